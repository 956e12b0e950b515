"""Never the wrong fleet: world-touching commands refuse the bundled example unless asked, read commands say
when they use it, a fleet path that is no file is bad input, and the context's fleet is a default like the flag's."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from xzctl.checks.window import MIN_SCRAPES
from xzctl.cli import run
from xzctl.sandbox import SandboxInfo
from xzctl.sandbox.ready import wait_scraped
from xzctl.spec import bundled_example_path

NOTE = "xzctl: fleet: the bundled example"


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XZCTL_FLEET", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["bootstrap", "region", "beijing", "--check"],
        ["provision", "region", "beijing", "--preview"],
        ["rollout", "canary", "asr", "registry.xiaozhi.example/inference/asr:1.4.0"],
        ["sandbox", "up"],
    ],
)
def test_world_commands_refuse_the_bundled_example(
    argv: list[str], empty_cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert f"`xzctl {' '.join(argv[:2])}` will not run on the bundled example fleet" in err
    assert "--example" in err
    assert not (empty_cwd / ".xzctl").exists()  # nothing started, nothing recorded


@pytest.mark.usefixtures("empty_cwd")
def test_example_and_fleet_together_are_two_answers(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["bootstrap", "region", "beijing", "--example", "--fleet", str(bundled_example_path())]) == 2
    assert "--example and --fleet name two fleets" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["fleet", "validate"], ["fleet", "plan"], ["bootstrap", "inventory", "beijing"]])
@pytest.mark.usefixtures("empty_cwd")
def test_read_commands_say_they_use_the_bundled_example(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 0
    assert capsys.readouterr().err.count(NOTE) == 1
    assert run([*argv, "--fleet", str(bundled_example_path())]) == 0
    assert NOTE not in capsys.readouterr().err
    assert run([*argv, "--example"]) == 0  # asked for: nothing to point out
    assert NOTE not in capsys.readouterr().err


def test_a_fleet_yaml_that_is_a_directory_is_bad_input(empty_cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (empty_cwd / "fleet.yaml").mkdir()
    assert run(["fleet", "validate"]) == 2
    err = capsys.readouterr().err
    assert "fleet.yaml: is a directory" in err and NOTE not in err


def test_a_directory_as_fleet_is_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "validate", "-f", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("is a directory") == 1, err


def test_the_context_fleet_is_used_and_the_flag_wins(
    empty_cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = empty_cwd / "staging.yaml"
    spec.write_text(bundled_example_path().read_text(encoding="utf-8").replace("xiaozhi-1000", "staging-1000"))
    config = empty_cwd / "config.yaml"
    config.write_text(f"current_context: staging\ncontexts:\n  staging: {{fleet: {spec}}}\n  other: {{}}\n")
    monkeypatch.setenv("XZCTL_CONFIG", str(config))
    assert run(["fleet", "validate", "-o", "json"]) == 0
    out, err = capsys.readouterr()
    assert str(spec) in out and NOTE not in err
    # A world command takes the context's fleet as given: no refusal.
    assert run(["bootstrap", "inventory", "beijing"]) == 0
    assert "xzctl_fleet: !unsafe 'staging-1000'" in capsys.readouterr().out
    assert run(["fleet", "validate", "-o", "json", "--fleet", str(bundled_example_path())]) == 0
    assert str(bundled_example_path()) in capsys.readouterr().out
    monkeypatch.setenv("XZCTL_CONTEXT", "other")  # a context without a fleet: back to the fallbacks
    assert run(["fleet", "validate"]) == 0
    assert NOTE in capsys.readouterr().err


@pytest.mark.live
@pytest.mark.usefixtures("empty_cwd")
def test_live_commands_on_the_sandbox_judge_its_fleet(
    sandbox_factory: Callable[..., SandboxInfo], capsys: pytest.CaptureFixture[str]
) -> None:
    # `sandbox up --scale 4` simulates a generated fleet: its nodes, not the example's 7, are what is judged.
    box = sandbox_factory(scale=4)
    # No verdict before three scrapes of every node ("warming up", a document saying unknown): what `sandbox up` waits for.
    assert wait_scraped(box, MIN_SCRAPES, timeout=30)
    run(["capacity", "report", "--state-dir", str(box.state_dir), "--window", "5s", "-o", "json"])
    out, err = capsys.readouterr()
    names = {n["name"] for n in json.loads(out)["nodes"]}
    assert names == {"beijing-edge-0001", "beijing-edge-0002", "shanghai-edge-0001", "guangzhou-edge-0001"}
    assert NOTE not in err

    # --watch -o json: one document per line (NDJSON), each with its time.
    argv = ["capacity", "report", "--state-dir", str(box.state_dir), "--window", "5s", "-o", "json"]
    run([*argv, "--watch", "--count", "2", "--interval", "0.2"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all(json.loads(line)["time"].endswith("+00:00") for line in lines)


@pytest.mark.parametrize(
    "argv",
    [
        ["rollout", "canary", "asr", "registry.xiaozhi.example/inference/asr:1.4.0", "--dry-run", "-o", "json"],
        ["provision", "region", "beijing", "--preview", "-o", "json"],
    ],
)
def test_world_commands_take_the_users_spec_the_sandbox_runs(
    argv: list[str], empty_cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A sandbox (its record; this process stands in for its processes) runs the user's spec, not the example.
    spec = empty_cwd / "mine.yaml"
    spec.write_text(bundled_example_path().read_text(encoding="utf-8").replace("xiaozhi-1000", "mine-1000"))
    info = SandboxInfo("http://127.0.0.1:9", "http://127.0.0.1:9", empty_cwd / ".xzctl", {"simulator": os.getpid()})
    info.fleet_path = str(spec)
    (empty_cwd / ".xzctl" / "sandbox").mkdir(parents=True)
    (empty_cwd / ".xzctl" / "sandbox" / "state.json").write_text(json.dumps(info.to_json()), encoding="utf-8")
    monkeypatch.setenv("PATH", str(empty_cwd))  # no pulumi CLI: provision stops before any engine runs
    code = run(argv)
    out, err = capsys.readouterr()
    assert "bundled example" not in err, err
    if argv[0] == "rollout":
        assert code == 0 and json.loads(out)["fleet"] == str(spec)
    else:
        assert code == 4 and "the pulumi CLI is not installed" in err, err  # past the fleet: its next need
