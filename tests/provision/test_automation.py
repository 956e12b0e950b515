"""The Automation API driver's own logic: failure messages, the secrets pre-check, progress display."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from pulumi.automation import CommandError, CommandResult

from xzctl.cli import run
from xzctl.errors import ExternalToolError
from xzctl.provision import ProvisionEvent
from xzctl.provision.automation import missing_secrets, stored_config_keys
from xzctl.provision.engine import pulumi_errors, reason
from xzctl.provision.stack_config import update_config
from xzctl.spec import Fleet

DIAGNOSTICS = (
    "Updating (cloud):\n"
    "  pulumi:pulumi:Stack xzctl-cloud running\n"
    "Diagnostics:\n"
    "  pulumi:pulumi:Stack (xzctl-cloud):\n"
    "    error: secrets are not set: xzctl-object-store needs Pulumi config secret\n"
)


@pytest.mark.parametrize(
    ("stdout", "stderr", "expected"),
    [
        (
            DIAGNOSTICS,
            "error: update failed\n",
            "error: secrets are not set: xzctl-object-store needs Pulumi config secret",
        ),
        ("Previewing update (cloud):\n", "error: preview failed\n", "error: preview failed"),
        ("", "error: could not load plugin kubernetes\n  details\n", "error: could not load plugin kubernetes"),
        ("some output\n", "", "some output"),
        ("", "", "CommandError"),
    ],
)
def test_a_failure_names_its_reason_not_the_stream(stdout: str, stderr: str, expected: str) -> None:
    assert reason(CommandError(CommandResult(stdout=stdout, stderr=stderr, code=255))) == expected


@pytest.mark.parametrize(
    ("stderr", "raised"),
    [
        ("error: preview canceled\n", KeyboardInterrupt),
        ("error: update canceled\n", KeyboardInterrupt),
        ("error: update failed\n", ExternalToolError),
        ("error: resource canceled its own deletion\n", ExternalToolError),
    ],
)
def test_an_engine_that_cancelled_is_an_interrupted_run(stderr: str, raised: type[BaseException]) -> None:
    with pytest.raises(raised), pulumi_errors("edge-guangzhou"):
        raise CommandError(CommandResult(stdout="", stderr=stderr, code=255))


def test_pulumi_secrets_are_pre_checked_against_env_and_stored_config(example_fleet: Fleet, tmp_path: Path) -> None:
    from xzctl.provision.objects import target_objects

    secrets = target_objects(example_fleet, "cloud").secrets
    assert "XZCTL_SECRET_OBJECT_STORE_ROOT_PASSWORD" in missing_secrets(secrets, {}, set())
    env = {"XZCTL_SECRET_OBJECT_STORE_ROOT_PASSWORD": "p"}
    assert "XZCTL_SECRET_OBJECT_STORE_ROOT_PASSWORD" not in missing_secrets(secrets, env, set())
    (tmp_path / "Pulumi.cloud.yaml").write_text(
        "config:\n  xzctl:objectStoreRootPassword:\n    secure: v1:abc\n  xzctl:fleet: /f.yaml\n", encoding="utf-8"
    )
    stored = stored_config_keys(tmp_path, "cloud")
    assert stored == {"xzctl:objectStoreRootPassword", "xzctl:fleet"}
    assert "XZCTL_SECRET_OBJECT_STORE_ROOT_PASSWORD" not in missing_secrets(secrets, {}, stored)
    assert stored_config_keys(tmp_path, "edge-beijing") == set()


def test_cloud_without_the_object_store_password_stops_before_pulumi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pulumi").write_text("#!/bin/sh\nexit 99\n", encoding="utf-8")
    (bin_dir / "pulumi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
    for name in list(os.environ):
        if name.startswith("XZCTL_SECRET_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XZCTL_SECRET_BACKUP_CREDENTIALS", "RESTIC_PASSWORD=x")
    monkeypatch.setenv("XZCTL_SECRET_LLM_ROUTER_KEY", "k")
    assert run(["--example", "provision", "cloud", "--yes", "--state-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "stack cloud needs the secret(s) in XZCTL_SECRET_OBJECT_STORE_ROOT_PASSWORD" in err
    assert not (tmp_path / "s" / "pulumi").exists()


def test_progress_prints_type_names_as_they_are(capsys: pytest.CaptureFixture[str]) -> None:
    from xzctl.cli.provision import _progress

    _progress(ProvisionEvent(phase="start", op="create", type="xzctl:cloud:CloudOrchestrator", name="llm-router"))
    err = capsys.readouterr().err
    assert "xzctl:cloud:CloudOrchestrator" in err
    assert "\u2601" not in err  # rich's :cloud: emoji


class _RecordingStack:
    """The Automation API stack an update drives: what it was asked to do, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.configured: set[str] = set()

    def set_all_config(self, config: dict[str, object]) -> None:
        self.calls.append(("set_all_config", sorted(config)))
        self.configured = set(config)

    def remove_config(self, key: str) -> None:
        self.calls.append(("remove_config", key))

    def up(self, **options: object) -> SimpleNamespace:
        self.calls.append(("up", options["show_secrets"]))
        return SimpleNamespace(summary=SimpleNamespace(resource_changes={"same": 3}), outputs={}, stdout="")


@pytest.mark.parametrize(
    ("with_pins", "stored", "removed"),
    [
        (False, {"xzctl:fleet", "xzctl:imagePins"}, True),  # a rollout's pins: an update from the spec drops them
        (False, {"xzctl:fleet"}, False),  # none held: no pulumi run to remove them
        (True, {"xzctl:fleet", "xzctl:imagePins"}, False),  # a rollout step sets its own
    ],
)
def test_an_update_drops_a_rollout_s_pins_only_when_the_stack_holds_them(
    example_fleet: Fleet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    with_pins: bool,
    stored: set[str],
    removed: bool,
) -> None:
    from xzctl.manifests.pins import spec_pins
    from xzctl.provision import automation
    from xzctl.provision.objects import target_objects

    stack = _RecordingStack()
    monkeypatch.setattr(automation, "open_stack", lambda *_: stack)
    pins = spec_pins(example_fleet) if with_pins else None
    request = automation._Request(
        "edge-beijing",
        "beijing",
        update_config(tmp_path / "fleet.yaml", "beijing"),
        pins,
        False,
        False,
        {},
        tmp_path,
        4,
        [],
        stored,
    )
    result = automation._run(request, example_fleet, target_objects(example_fleet, "beijing", pins), None, {})
    assert (("remove_config", automation.PINS_CONFIG) in stack.calls) is removed
    assert (automation.PINS_CONFIG in stack.configured) is with_pins
    # the summary after the update is read without decrypting the stack's secrets
    assert stack.calls[-1] == ("up", False) and result.changes == {"same": 3}
