"""The workspace reads the file backend's outputs and stacks from its files; only creating a stack goes to the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from xzctl.provision.backend import SECRET_SIGNATURE, backend_dir
from xzctl.provision.workspace import BackendWorkspace

CIPHER = {SECRET_SIGNATURE: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:AAAA"}


class FakeCli:
    """The pulumi CLI as the workspace sees it: every run recorded, each one succeeding."""

    version = None

    def __init__(self) -> None:
        self.runs: list[list[str]] = []

    def run(self, args: list[str], *_: Any, **__: Any) -> auto.CommandResult:
        self.runs.append(list(args))
        return auto.CommandResult(stdout="", stderr="", code=0)


def _workspace(state: Path, outputs: dict[str, Any] | None) -> tuple[BackendWorkspace, FakeCli]:
    if outputs is not None:
        folder = backend_dir(state) / ".pulumi" / "stacks" / "xzctl"
        folder.mkdir(parents=True)
        stack = {"type": "pulumi:pulumi:Stack", "outputs": outputs}
        (folder / "cloud.json").write_text(json.dumps({"checkpoint": {"latest": {"resources": [stack]}}}))
    cli = FakeCli()
    work = state / "work"
    work.mkdir(parents=True, exist_ok=True)
    return BackendWorkspace(state, work_dir=str(work), pulumi_command=cli), cli


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({}, {}),
        ({"endpoint": "http://127.0.0.1:8080/v1"}, {"endpoint": ("http://127.0.0.1:8080/v1", False)}),
        ({"token": CIPHER, "count": 3}, {"token": ("[secret]", True), "count": (3, False)}),
    ],
)
def test_outputs_come_from_the_checkpoint_without_a_cli_run(
    tmp_path: Path, outputs: dict[str, Any], expected: dict[str, tuple[Any, bool]]
) -> None:
    workspace, cli = _workspace(tmp_path, outputs)
    got = workspace.stack_outputs("cloud")
    assert {k: (v.value, v.secret) for k, v in got.items()} == expected
    assert cli.runs == []


@pytest.mark.parametrize("held", [True, False])
def test_a_stack_is_selected_without_a_cli_run(tmp_path: Path, *, held: bool) -> None:
    workspace, cli = _workspace(tmp_path, {} if held else None)
    if held:
        workspace.select_stack("cloud")
    else:
        with pytest.raises(auto.StackNotFoundError, match="no stack named 'cloud'"):
            workspace.select_stack("cloud")
    assert cli.runs == []


def test_a_stack_the_backend_lacks_is_created_with_one_cli_run(tmp_path: Path) -> None:
    workspace, cli = _workspace(tmp_path, None)
    auto.Stack.create_or_select("cloud", workspace)
    assert [r[:3] for r in cli.runs] == [["stack", "init", "cloud"]]


def test_the_cli_version_is_checked_once_per_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every PulumiCommand runs `pulumi version`; a process that opens many workspaces (a rollout) runs it once
    for each pulumi binary it finds on PATH."""
    from xzctl.provision.workspace import pulumi_command

    runs = tmp_path / "runs"
    for name in ("a", "b"):
        cli = tmp_path / name / "pulumi"
        cli.parent.mkdir()
        cli.write_text(f"#!/bin/sh\necho {name} >> {runs}\necho v3.274.1\n")
        cli.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "a"))
    first = pulumi_command()
    assert pulumi_command() is first
    monkeypatch.setenv("PATH", str(tmp_path / "b"))
    assert pulumi_command() is not first
    assert runs.read_text().split() == ["a", "b"]
