"""`xzctl rollout ...` as a process: kill -9 between steps then resume (live); status, dry run, abort --force,
exit codes, IDs at 80 columns, --watch, --write-spec (no Prometheus needed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.golden import assert_golden
from tests.fixtures.image_catalog import YANKED_ASR
from tests.fixtures.rollout_fakes import make_state
from tests.fixtures.rollout_sandbox import NEW_ASR, OLD_ASR, asr_images
from xzctl.cli import run
from xzctl.rollout.specpin import write_pin
from xzctl.rollout.state import Measurement, Pending, Phase, Purpose, Result, StateStore, StepStatus
from xzctl.sandbox import SandboxInfo
from xzctl.spec import Fleet, bundled_example_path

REPO = Path(__file__).resolve().parents[2]
NEW_TTS = "registry.xiaozhi.example/inference/tts:1.2.0"
SECRET = "s3cr3t-pw"


@pytest.fixture(autouse=True)
def _example_fleet(monkeypatch: pytest.MonkeyPatch) -> None:
    # A rollout refuses the bundled example unless it is named; these tests roll out on it (subprocesses too).
    monkeypatch.setenv("XZCTL_FLEET", str(bundled_example_path()))


def _cli_env(box: SandboxInfo) -> dict[str, str]:
    return {**os.environ, "XZCTL_STATE_DIR": str(box.state_dir)}


def _spawn_rollout(box: SandboxInfo, checks: int) -> subprocess.Popen[bytes]:
    # 5 s between checks: the test sees step 2 analysing (and stops the process there) before it passes
    argv = [sys.executable, "-m", "xzctl", "rollout", "canary", "asr", NEW_ASR, "--interval", "5s"]
    argv += ["--checks", str(checks), "--window", "4s", "--warmup", "0s", "--deployer", "sandbox"]
    # credentials in the URL are used (Prometheus without auth ignores them) but never shown or recorded
    argv += ["--prometheus", box.prometheus_url.replace("http://", f"http://ops:{SECRET}@")]
    return subprocess.Popen(argv, cwd=REPO, env=_cli_env(box), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_step(store: StateStore, step: int, status: str, proc: subprocess.Popen[bytes], before: set[str]) -> str:
    """The id of the rollout `proc` started (not one of `before`) once its step `step` is `status` (bounded: 150 s,
    for a start-up beside a second test run at load 50)."""
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and proc.poll() is None:
        states = [s for s in store.all() if s.id not in before]
        if states and states[0].steps[step].status == status:
            return states[0].id
        time.sleep(0.2)
    pytest.fail(f"the rollout's step {step + 1} never became {status}")


def _start_and_kill_between_steps(box: SandboxInfo) -> str:
    """Run a rollout in a subprocess, kill -9 it once step 1 passed and step 2 is analysed; return the rollout id."""
    store = StateStore(box.state_dir)
    before = {s.id for s in store.all()}  # the session's sandbox keeps earlier tests' finished rollouts
    proc = _spawn_rollout(box, checks=2)
    try:
        rollout_id = _wait_step(store, 1, "analyzing", proc, before)
        # frozen in that analysis (it holds the step's nodes until it passes): the second rollout meets the lock
        # however long it takes to start on a loaded machine (at load 20 it once came after the step had passed)
        proc.send_signal(signal.SIGSTOP)
        # a second rollout on the nodes of its step is refused while this one runs (short settings: it must not run)
        assert run([*_tts(box), "--node", "bj-edge-02", "--interval", "1s", "--checks", "1"]) == 5
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return rollout_id


def _tts(box: SandboxInfo) -> list[str]:
    return ["rollout", "canary", "tts", NEW_TTS, "--state-dir", str(box.state_dir), "--deployer", "sandbox"]


@pytest.mark.live
def test_kill_between_steps_then_resume_finishes(rollout_box: SandboxInfo, capsys: pytest.CaptureFixture[str]) -> None:
    box = rollout_box
    rollout_id = _start_and_kill_between_steps(box)
    capsys.readouterr()
    assert run(["rollout", "status", rollout_id, "--state-dir", str(box.state_dir), "-o", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["interrupted"] is True and status["phase"] == "progressing"
    assert status["prometheus"] == box.prometheus_url
    assert SECRET not in (box.state_dir / "rollouts" / f"{rollout_id}.json").read_text()
    # the dead rollout still owns the nodes it was on: a new one must not trample its half-changed pins
    assert run([*_tts(box), "--node", "bj-edge-03", "--interval", "1s", "--checks", "1"]) == 5
    assert f"rollout {rollout_id} on edge node bj-edge-03 was interrupted" in capsys.readouterr().err
    assert StateStore(box.state_dir).held(StateStore(box.state_dir).load(rollout_id)) == ["bj-edge-02", "bj-edge-03"]
    # nor may a new sandbox replace the one it deploys to
    assert run(["sandbox", "up", "--state-dir", str(box.state_dir)]) == 5
    assert "depend on the previous sandbox" in capsys.readouterr().err
    assert run(["rollout", "resume", rollout_id, "--state-dir", str(box.state_dir)]) == 2
    assert "credentials in the URL" in capsys.readouterr().err  # never recorded: they must be given again
    argv = ["rollout", "resume", rollout_id, "--basic-auth", f"ops:{SECRET}", "--state-dir", str(box.state_dir)]
    assert run([*argv, "-o", "json"]) == 0
    final = json.loads(capsys.readouterr().out)
    assert final["phase"] == "promoted" and final["exit_code"] == 0
    assert [s["status"] for s in final["steps"]] == ["passed"] * 4
    assert all(pin == {"stable": NEW_ASR, "canary": None} for pin in asr_images(box).values())
    assert run(["rollout", "resume", rollout_id, "--state-dir", str(box.state_dir)]) == 2  # already finished


def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Path, yanked_catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = str(tmp_path / "state")
    yanked = f"registry.xiaozhi.example/inference/asr:{YANKED_ASR}"
    assert run(["rollout", "canary", "asr", yanked, "--state-dir", state_dir]) == 2
    assert "rolls out in the sandbox by default, but no sandbox runs" in capsys.readouterr().err
    argv = ["rollout", "canary", "asr", yanked, "--deployer", "pulumi", "--catalog", str(yanked_catalog)]
    assert run([*argv, "--state-dir", state_dir, "--prometheus", "http://127.0.0.1:9"]) == 2
    assert "was yanked" in capsys.readouterr().err
    assert run(["rollout", "canary", "asr", NEW_ASR, "--interval", "soon", "--state-dir", state_dir]) == 2
    argv = ["rollout", "canary", "asr", NEW_ASR, "--deployer", "pulumi", "--state-dir", state_dir]
    assert run([*argv, "--on-unreachable", "skip", "--dry-run"]) == 2
    assert run([*argv, "--skip-node", "bj-edge-99", "--dry-run"]) == 2
    if shutil.which("pulumi") is None:
        # production goes through the Pulumi stacks: without the pulumi CLI it fails before anything is recorded
        assert run([*argv, "--prometheus", "http://127.0.0.1:9"]) == 4
        assert "pulumi CLI is not installed" in capsys.readouterr().err
    assert not (tmp_path / "state" / "rollouts").exists()


def test_dry_run_shows_the_steps_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["rollout", "canary", "asr", NEW_ASR, "--region", "shanghai", "--dry-run", "--deployer", "pulumi"]
    assert run([*argv, "--skip-node", "gz-edge-02=disk repair", "--state-dir", str(tmp_path), "-o", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [(s["name"], s["nodes"]) for s in plan["steps"]] == [
        ("canary node sh-edge-01", ["sh-edge-01"]),
        ("rest of shanghai", ["sh-edge-02"]),
        ("region beijing", ["bj-edge-01", "bj-edge-02", "bj-edge-03"]),
        ("region guangzhou", ["gz-edge-01"]),
    ]
    assert plan["skipped_nodes"] == {"gz-edge-02": "disk repair"}
    assert plan["settings"]["window_seconds"] == 120.0 and plan["settings"]["interval_seconds"] == 60.0
    assert plan["settings"]["warmup_seconds"] == 30.0  # the asr image's, from the catalog
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("flag", "turns"), [(None, False), ("--turns", True), ("--no-turns", False)])
def test_turn_checks_are_asked_for_with_turns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str | None, turns: bool
) -> None:
    """Away from the sandbox's real node the turn checks are off unless asked for (a node without probes would fail
    closed); asked for, their KPIs are the spec's end-to-end latency and error rate."""
    argv = ["rollout", "canary", "asr", NEW_ASR, "--dry-run", "--deployer", "pulumi", "--state-dir", str(tmp_path)]
    assert run([*argv, *([flag] if flag else []), "-o", "json"]) == 0
    extra = json.loads(capsys.readouterr().out)["thresholds"]["extra"]
    assert extra == ({"turn_first_audio_p95_seconds": 3.0, "turn_failure_ratio": 0.001} if turns else {})


def _interrupted(store: StateStore, fleet: Fleet, rollout_id: str = "asr-7xk2p", *, locks: bool = True) -> None:
    state = make_state(fleet, rollout_id)
    state.created = state.updated = 1795557600.0
    state.steps[0].status, state.steps[0].successes = StepStatus.ANALYZING, 1
    state.pending = Pending(purpose=Purpose.STEP, step=0, pins=state.baseline)
    state.skipped_nodes = {"bj-edge-03": "disk repair"}
    state.analysis = [
        Measurement(step=0, at=1795557601.0, result=Result.SUCCESS, reason="p95 canary 287 ms vs stable 287 ms"),
        Measurement(step=0, at=1795557602.0, result=Result.ERROR, reason="missing data: no asr requests in 4s"),
    ]
    store.save(state)
    if locks:  # what its killed process held: the nodes of its step
        store.hold(state, state.steps[0].nodes)


def test_status_of_an_interrupted_rollout_matches_golden(
    tmp_path: Path, example_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    store = StateStore(tmp_path)
    _interrupted(store, example_fleet)
    assert run(["rollout", "status", "asr-7xk2p", "--state-dir", str(tmp_path), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["interrupted"] is True and data["pending_deploy"] == "step" and data["exit_code"] == 3
    data.pop("age_seconds")
    assert_golden(Path(__file__).parent / "golden" / "rollout-status.json", json.dumps(data, indent=2) + "\n")
    assert run(["rollout", "status", "asr-7xk2p", "--state-dir", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    for needle in ("interrupted", "half-applied", "left out", "bj-edge-03", "missing data", "age", "locks edge node"):
        assert needle in table
    assert run(["rollout", "status", "../etc", "--state-dir", str(tmp_path)]) == 2


def test_status_list_never_cuts_ids_at_80_columns(
    tmp_path: Path, example_fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore(tmp_path)
    ids = [store.new_id("xiaozhi_server") for _ in range(3)]
    for rollout_id in ids:
        _interrupted(store, example_fleet, rollout_id, locks=False)  # a listing: three on the same nodes
    from xzctl.cli import _common

    monkeypatch.setattr(_common.stdout, "_width", 80)
    assert run(["rollout", "status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines())
    for rollout_id in ids:
        assert rollout_id in out
    assert "3 steps" not in out and "0/1" in out  # progress column


def test_watch_emits_ndjson_and_ends_when_settled(
    tmp_path: Path, example_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    store = StateStore(tmp_path)
    state = make_state(example_fleet, "asr-d0ne2")
    state.phase = Phase.ROLLED_BACK
    store.save(state)
    assert run(["rollout", "status", "--watch", "--every", "100ms", "--state-dir", str(tmp_path), "-o", "json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    first = json.loads(lines[0])
    assert first["rollouts"][0]["id"] == "asr-d0ne2" and first["at"] > 0


def test_abort_force_marks_aborted_releases_locks_and_exits_3(
    tmp_path: Path, example_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    store = StateStore(tmp_path)
    _interrupted(store, example_fleet)
    assert run(["rollout", "abort", "asr-7xk2p", "--state-dir", str(tmp_path)]) == 3  # its sandbox is gone
    err = capsys.readouterr().err
    assert "xzctl rollout abort asr-7xk2p --force" in err
    assert run(["rollout", "abort", "asr-7xk2p", "--force", "--state-dir", str(tmp_path), "-o", "json"]) == 3
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert (data["phase"], data["cause"]) == ("aborted", "forced")
    assert "check by hand" in captured.err
    assert store.holder("bj-edge-01") is None
    assert run(["rollout", "abort", "asr-7xk2p", "--state-dir", str(tmp_path)]) == 2  # already finished


def test_write_spec_changes_only_the_image_lines(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    original = bundled_example_path().read_text()
    spec.write_text(original)
    changed = write_pin(spec, "asr", {OLD_ASR}, NEW_ASR)
    assert changed == ["node_profiles.edge-standard.services.asr.image"]
    before, after = original.splitlines(), spec.read_text().splitlines()
    assert len(before) == len(after)
    diff = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert diff == [(f"        image: {OLD_ASR}", f"        image: {NEW_ASR}")]


def test_help_explains_phases_exit_codes_locks_force_and_partial(capsys: pytest.CaptureFixture[str]) -> None:
    run(["rollout", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for needle in (
        "Phases:",
        "partial",
        "Exit codes: 0 promoted",
        "Locks:",
        "--force",
        "current deploy changes",
        "retry",
    ):
        assert needle in text


def test_the_scrape_interval_a_first_window_waits_for_is_the_sandbox_s_else_the_spec_s(
    tmp_path: Path, example_fleet: Fleet
) -> None:
    from xzctl.cli._rollout_setup import scrape_interval

    store = StateStore(tmp_path)
    box = SandboxInfo("http://127.0.0.1:9", "http://127.0.0.1:9", tmp_path, {}, scrape_interval_seconds=0.5)
    (tmp_path / "sandbox").mkdir()
    (tmp_path / "sandbox" / "state.json").write_text(json.dumps(box.to_json()))
    assert scrape_interval({"kind": "sandbox"}, store) == 0.5
    spec = max(n.monitoring.metrics_interval_seconds for n in example_fleet.edge_nodes())
    assert scrape_interval({"kind": "pulumi", "fleet": str(bundled_example_path())}, store) == spec


def test_pause_of_a_rollout_whose_sandbox_is_gone_says_the_way_out(
    tmp_path: Path, example_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    # The pause itself is judged on fakes (tests/rollout/test_safety.py); here the CLI's refusals.
    store = StateStore(tmp_path)
    _interrupted(store, example_fleet)
    assert run(["rollout", "pause", "asr-7xk2p", "--state-dir", str(tmp_path), "-o", "json"]) == 3
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "unknown" and data["hint"].endswith("xzctl rollout abort asr-7xk2p --force")
    assert run(["rollout", "abort", "asr-7xk2p", "--force", "--state-dir", str(tmp_path)]) == 3
    capsys.readouterr()
    assert run(["rollout", "pause", "asr-7xk2p", "--state-dir", str(tmp_path)]) == 2  # aborted: nothing to pause
    assert "is aborted, not progressing: nothing to pause" in capsys.readouterr().err


def test_retry_and_undo_say_what_there_is_to_act_on(
    tmp_path: Path, example_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    # What retry and undo decide is judged on fakes (tests/rollout/test_retry_undo.py); here the CLI's refusals.
    state_dir = ["--state-dir", str(tmp_path)]
    assert run(["rollout", "retry", *state_dir]) == 2
    assert "no aborted or rolled_back rollout recorded" in capsys.readouterr().err
    assert run(["rollout", "undo", "asr", *state_dir, "-o", "json"]) == 2
    assert "no promoted asr rollout recorded" in json.loads(capsys.readouterr().out)["error"]
    store = StateStore(tmp_path)
    _interrupted(store, example_fleet)
    assert run(["rollout", "retry", "asr-7xk2p", *state_dir]) == 2
    assert "xzctl rollout resume asr-7xk2p" in capsys.readouterr().err
    done = store.load("asr-7xk2p").model_copy(update={"phase": Phase.PROMOTED, "fleet": str(bundled_example_path())})
    store.save(done)
    assert run(["rollout", "undo", "asr-7xk2p", *state_dir]) == 2  # its sandbox is gone and none runs
    assert "deployed to the sandbox, but none runs (xzctl sandbox up)" in capsys.readouterr().err


def test_write_spec_after_an_undo_to_the_release_the_spec_pins_changes_nothing(
    tmp_path: Path, example_fleet: Fleet
) -> None:
    from xzctl.cli._rollout_view import _offer_spec_pin

    spec = tmp_path / "fleet.yaml"
    spec.write_text(bundled_example_path().read_text())
    undo = make_state(example_fleet, "asr-und01").model_copy(update={"image": OLD_ASR, "fleet": str(spec)})
    undo.phase = Phase.PROMOTED
    undo.baseline = {n: {**pins, "asr": {"stable": NEW_ASR, "canary": None}} for n, pins in undo.baseline.items()}
    _offer_spec_pin(undo, True)  # the promotion it undid was never pinned: the spec already names OLD_ASR
    assert spec.read_text() == bundled_example_path().read_text()


@pytest.mark.parametrize(
    ("service", "record", "nodes", "expected"),
    [
        ("asr", {"node": "bj-edge-01", "xiaozhi": {"websocket_url": "ws://x"}}, ["bj-edge-01"], "bj-edge-01"),
        ("tts", {"node": "bj-edge-01", "xiaozhi": {"websocket_url": "ws://x"}}, ["bj-edge-01"], None),
        ("asr", {"node": "bj-edge-01", "xiaozhi": None}, ["bj-edge-01"], None),  # no server: no real turns
        ("asr", {"node": "bj-edge-01", "xiaozhi": {"websocket_url": "ws://x"}}, ["bj-edge-02"], None),
        ("asr", None, ["bj-edge-01"], None),
    ],
    ids=["asr-reaches-it", "other-service", "no-server", "other-node", "no-real-node"],
)
def test_an_asr_rollout_drives_the_real_node_only_when_it_reaches_it_with_its_server(
    service: str, record: dict[str, object] | None, nodes: list[str], expected: str | None
) -> None:
    from xzctl.cli._rollout_setup import real_asr_node

    info = SandboxInfo("http://p", "http://s", Path("."), {}, real_node=record)
    assert real_asr_node(info, service, nodes) == expected


def test_a_word_error_rate_asked_of_a_real_node_without_its_server_is_refused_at_once() -> None:
    from xzctl.cli._rollout_setup import real_asr_node
    from xzctl.errors import BadInputError

    # without the server the canary is simulated: no prober, so the check would fail closed measurement after measurement
    info = SandboxInfo("http://p", "http://s", Path("."), {}, real_node={"node": "bj-edge-01", "xiaozhi": None})
    with pytest.raises(BadInputError, match="real node bj-edge-01 runs no xiaozhi server") as exc:
        real_asr_node(info, "asr", ["bj-edge-01"], max_wer=0.3)
    assert exc.value.hint == "restart the sandbox with --xiaozhi-source DIR (or $XZCTL_XIAOZHI_SOURCE)"
    assert real_asr_node(info, "asr", ["bj-edge-02"], max_wer=0.3) is None  # the rollout does not reach it
