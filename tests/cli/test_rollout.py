"""`xzctl rollout ...` as a process: kill -9 between steps, then resume or abort; locks; exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.golden import assert_golden
from tests.rollout._live import NEW_ASR, OLD_ASR, asr_images, ready
from tests.rollout.test_state import make_state
from xzctl.cli import run
from xzctl.rollout.state import Measurement, StateStore
from xzctl.sandbox import SandboxInfo, SimulatorClient
from xzctl.spec import Fleet

pytestmark = pytest.mark.prometheus
Factory = Callable[..., SandboxInfo]
REPO = Path(__file__).resolve().parents[2]
NEW_TTS = "registry.xiaozhi.example/inference/tts:1.1.0"


def _cli_env(box: SandboxInfo) -> dict[str, str]:
    return {**os.environ, "XZCTL_STATE_DIR": str(box.state_dir)}


def _spawn_rollout(box: SandboxInfo, checks: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "xzctl", "rollout", "canary", "asr", NEW_ASR, "--interval", "1s"]
    argv += ["--checks", str(checks), "--window", "4s"]
    return subprocess.Popen(argv, cwd=REPO, env=_cli_env(box), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_first_step(store: StateStore, status: str, proc: subprocess.Popen[bytes]) -> str:
    """The rollout id once its first step reached `status` (bounded: 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        states = store.all()
        if states and states[0].steps[0].status == status:
            return states[0].id
        time.sleep(0.2)
    pytest.fail(f"the rollout's first step never became {status}")


def _start_and_kill_between_steps(box: SandboxInfo) -> str:
    """Run a rollout in a subprocess, kill -9 it once step 1 passed; return the rollout id."""
    proc = _spawn_rollout(box, checks=2)
    try:
        rollout_id = _wait_first_step(StateStore(box.state_dir), "passed", proc)
        # a second rollout on the same region is refused while this one runs
        assert run(["rollout", "canary", "tts", NEW_TTS, "--state-dir", str(box.state_dir)]) == 5
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return rollout_id


def test_kill_between_steps_then_resume_finishes(sandbox_factory: Factory, capsys: pytest.CaptureFixture[str]) -> None:
    box = sandbox_factory()
    ready(box)
    rollout_id = _start_and_kill_between_steps(box)
    capsys.readouterr()
    assert run(["rollout", "status", rollout_id, "--state-dir", str(box.state_dir), "-o", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["interrupted"] is True and status["phase"] == "progressing"
    # the dead rollout still owns its regions: a new one must not trample its half-changed pins
    assert run(["rollout", "canary", "tts", NEW_TTS, "--state-dir", str(box.state_dir)]) == 5
    assert "was interrupted" in capsys.readouterr().err
    assert run(["rollout", "resume", rollout_id, "--state-dir", str(box.state_dir), "-o", "json"]) == 0
    final = json.loads(capsys.readouterr().out)
    assert final["phase"] == "promoted"
    assert [s["status"] for s in final["steps"]] == ["passed"] * 4
    assert all(pin == {"stable": NEW_ASR, "canary": None} for pin in asr_images(box).values())


def test_kill_between_steps_then_abort_restores_stable_everywhere(
    sandbox_factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    box = sandbox_factory()
    ready(box)
    rollout_id = _start_and_kill_between_steps(box)
    assert any(pin["canary"] == NEW_ASR for pin in asr_images(box).values())
    capsys.readouterr()
    assert run(["rollout", "abort", "--state-dir", str(box.state_dir), "-o", "json"]) == 0
    final = json.loads(capsys.readouterr().out)
    assert (final["id"], final["phase"], final["cause"]) == (rollout_id, "aborted", "operator")
    assert all(pin == {"stable": OLD_ASR, "canary": None} for pin in asr_images(box).values())
    assert run(["rollout", "resume", rollout_id, "--state-dir", str(box.state_dir)]) == 2  # already finished


def test_regressed_canary_exits_1_and_json_names_the_failure(
    sandbox_factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    box = sandbox_factory()
    ready(box)
    SimulatorClient(box.simulator_url).control({"action": "image_profile", "image": NEW_ASR, "error_rate": 0.05})
    argv = ["rollout", "canary", "asr", NEW_ASR, "--interval", "1s", "--checks", "2", "--window", "4s", "-o", "json"]
    assert run([*argv, "--state-dir", str(box.state_dir)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["phase"] == "rolled_back" and data["analysis"][-1]["result"] == "failure"


def test_frozen_exporter_aborts_with_exit_3_and_never_promotes(
    sandbox_factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    box = sandbox_factory()
    ready(box)
    # bj-edge-01 answers scrapes (up == 1) but its counters no longer move: no data, not a healthy canary
    SimulatorClient(box.simulator_url).control({"action": "stale", "node": "bj-edge-01", "enabled": True})
    argv = ["rollout", "canary", "asr", NEW_ASR, "--interval", "1s", "--checks", "2", "--window", "4s", "-o", "json"]
    assert run([*argv, "--state-dir", str(box.state_dir)]) == 3
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert (data["phase"], data["cause"]) == ("aborted", "missing_data")
    assert "no asr requests" in data["reason"] and "bj-edge-01" in data["reason"]
    assert all(pin == {"stable": OLD_ASR, "canary": None} for pin in asr_images(box).values())


def test_abort_of_a_running_rollout_is_done_by_its_own_process(
    sandbox_factory: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    box = sandbox_factory()
    ready(box)
    proc = _spawn_rollout(box, checks=50)
    try:
        _wait_first_step(StateStore(box.state_dir), "analyzing", proc)
        assert run(["rollout", "abort", "--state-dir", str(box.state_dir), "-o", "json"]) == 0
        assert proc.wait(timeout=60) == 1  # the rollout process reports it did not promote
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    final = json.loads(capsys.readouterr().out)
    assert final["phase"] == "aborted" and final["cause"] == "operator"
    assert all(pin == {"stable": OLD_ASR, "canary": None} for pin in asr_images(box).values())


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_dir = str(tmp_path / "state")
    yanked = "registry.xiaozhi.example/inference/asr:0.9.0"
    assert run(["rollout", "canary", "asr", yanked, "--deployer", "sandbox", "--state-dir", state_dir]) == 2
    assert "no sandbox runs" in capsys.readouterr().err
    argv = ["rollout", "canary", "asr", yanked, "--deployer", "pulumi"]
    assert run([*argv, "--state-dir", state_dir, "--prometheus", "http://127.0.0.1:9"]) == 2
    assert "was yanked" in capsys.readouterr().err
    assert run(["rollout", "canary", "asr", NEW_ASR, "--interval", "soon", "--state-dir", state_dir]) == 2
    if shutil.which("pulumi") is None:
        # production goes through the Pulumi stacks: without the pulumi CLI it fails before anything is recorded
        assert run(["rollout", "canary", "asr", NEW_ASR, "--deployer", "pulumi", "--state-dir", state_dir]) == 4
        assert "pulumi CLI is not installed" in capsys.readouterr().err
    assert not (tmp_path / "state" / "rollouts").exists()


def test_dry_run_shows_the_steps_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["rollout", "canary", "asr", NEW_ASR, "--region", "shanghai", "--dry-run", "--deployer", "pulumi"]
    assert run([*argv, "--state-dir", str(tmp_path), "-o", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [(s["name"], s["nodes"]) for s in plan["steps"]] == [
        ("canary node sh-edge-01", ["sh-edge-01"]),
        ("rest of shanghai", ["sh-edge-02"]),
        ("region beijing", ["bj-edge-01", "bj-edge-02", "bj-edge-03"]),
        ("region guangzhou", ["gz-edge-01", "gz-edge-02"]),
    ]
    assert plan["settings"]["window_seconds"] == 120.0
    assert not any(tmp_path.iterdir())


def test_status_of_an_interrupted_rollout_matches_golden(
    tmp_path: Path, example_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    store = StateStore(tmp_path)
    state = make_state(example_fleet, "asr-20261124t220000z-0001", ["beijing"])
    state.created = state.updated = 1795557600.0
    state.steps[0].status, state.steps[0].successes = "analyzing", 1
    state.pending = {"purpose": "step", "step": 0, "pins": state.baseline}
    state.skipped_nodes = {"bj-edge-02": "unreachable at step 2"}
    state.analysis = [
        Measurement(0, 1795557601.0, "success", "p95 canary 287 ms vs stable 287 ms", {}),
        Measurement(0, 1795557602.0, "error", "missing data: no asr requests in the last 4s", {}),
    ]
    store.save(state)
    assert run(["rollout", "status", state.id, "--state-dir", str(tmp_path), "-o", "json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["interrupted"] is True and data["pending_deploy"] == "step"
    assert_golden(Path(__file__).parent / "golden" / "rollout-status.json", out)
    assert run(["rollout", "status", state.id, "--state-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    for needle in ("interrupted", "half-applied", "skipped", "bj-edge-02", "missing data"):
        assert needle in table
    assert run(["rollout", "status", "--state-dir", str(tmp_path), "-o", "json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [state.id]
    assert run(["rollout", "status", "../etc", "--state-dir", str(tmp_path)]) == 2
