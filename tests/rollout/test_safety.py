"""The rollout safety bugs of issue 10, one test each (fakes, no real time): fail closed, abort backward."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from tests.fixtures.rollout_fakes import (
    NEW,
    THRESHOLDS,
    Crash,
    FakeClock,
    FakeDeployer,
    MemoryStore,
    ScriptedAnalyzer,
)
from xzctl.cli import run
from xzctl.errors import BadInputError, ConflictError, UnknownStateError
from xzctl.manifests.pins import spec_pins
from xzctl.prom import Sample
from xzctl.redact import split_url_credentials
from xzctl.rollout.deploy import choose_deployer
from xzctl.rollout.engine import RolloutEngine
from xzctl.rollout.plan import canary_nodes, promoted_pins
from xzctl.rollout.start import new_rollout
from xzctl.rollout.state import EXIT_CODES, Cause, Phase, Purpose, Result, Settings, StateStore, StepStatus
from xzctl.rollout.transitions import force_abort
from xzctl.sandbox import start_sandbox
from xzctl.spec import Fleet, bundled_example_path
from xzctl.state import Claims

EXAMPLE = str(bundled_example_path())


def _rig(
    fleet: Fleet, root: Path, script: list[str], settings: Settings | None = None, spec: str = EXAMPLE, **kw: object
) -> tuple[RolloutEngine, FakeDeployer, MemoryStore, ScriptedAnalyzer]:
    clock = FakeClock()
    baseline = spec_pins(fleet)
    deployer = FakeDeployer(baseline)
    store = MemoryStore(root)
    state = new_rollout(
        fleet, spec, "asr", NEW, rollout_id="asr-s4fe1", baseline=baseline,
        settings=settings or Settings(interval_seconds=5.0, checks=3), thresholds=THRESHOLDS, deployer=deployer,
        prometheus_url="http://127.0.0.1:9", **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    analyzer = ScriptedAnalyzer(script, clock)
    engine = RolloutEngine(store, state, deployer, analyzer, sleep=clock.sleep, clock=clock.time)
    deployer.phase = lambda: engine.state.phase
    return engine, deployer, store, analyzer


class ForeignProm:
    """A Prometheus whose answers name no fleet node (another fleet, a huge body of unrelated series)."""

    def query(self, _promql: str, _at: float | None = None) -> list[Sample]:
        return [Sample({"node": f"other-{i}", "track": "canary"}, 1.0, 0.0) for i in range(1000)]


@pytest.mark.parametrize("outcome", ["empty", "nan", "error", "foreign"])
def test_bug1_never_promoted_without_measurements(example_fleet: Fleet, tmp_path: Path, outcome: str) -> None:
    engine, deployer, _, analyzer = _rig(example_fleet, tmp_path, [outcome])
    if outcome == "foreign":
        analyzer.prom = ForeignProm()  # type: ignore[assignment]
    state = engine.start()
    assert (state.phase, state.cause) == (Phase.ABORTED, Cause.MISSING_DATA)
    assert EXIT_CODES[state.phase] == 3
    assert not any(m.result == Result.SUCCESS for m in state.analysis)
    assert len(state.analysis) == state.settings.error_limit + 1
    assert deployer.running == spec_pins(example_fleet)  # the canary node is back on the old image


def test_bug2_abort_with_a_pending_promote_restores_never_promotes(example_fleet: Fleet, tmp_path: Path) -> None:
    engine, deployer, store, _ = _rig(example_fleet, tmp_path, ["pass"])
    final = promoted_pins(spec_pins(example_fleet), "asr", NEW, canary_nodes(engine.state.steps, 3))

    def killed_at_promote(pins: object) -> str | None:
        return "before" if pins == final else None

    deployer.crash = killed_at_promote
    with pytest.raises(Crash):
        engine.start()
    saved = store.load("asr-s4fe1")
    assert saved.pending is not None and saved.pending.purpose == Purpose.PROMOTE
    deployer.crash = lambda _: None
    forward = len(deployer.applies)
    state = RolloutEngine(store, saved, deployer, engine.analyzer, sleep=lambda _: None).abort()
    assert (state.phase, EXIT_CODES[state.phase]) == (Phase.ABORTED, 3)
    assert [pins for _, pins in deployer.applies[forward:]] == [spec_pins(example_fleet)]  # only the restore
    assert any(e["kind"] == "dropped" for e in state.events)


def test_bug3_a_short_gap_does_not_drop_a_node(example_fleet: Fleet, tmp_path: Path) -> None:
    # step 2 starts in a 25 s gap: two measurements without data, then data again
    script = ["pass"] * 3 + ["empty", "empty"] + ["pass"] * 20
    engine, deployer, _, _ = _rig(example_fleet, tmp_path, script)
    state = engine.start()
    assert state.phase == Phase.PROMOTED and EXIT_CODES[state.phase] == 0
    assert state.skipped_nodes == {}
    assert deployer.running == promoted_pins(spec_pins(example_fleet), "asr", NEW, state.nodes)
    assert len(state.nodes) == 7


def test_a_node_left_out_by_the_operator_ends_partial_with_the_converge_command(
    example_fleet: Fleet, tmp_path: Path
) -> None:
    engine, deployer, _, _ = _rig(example_fleet, tmp_path, ["pass"], skip_nodes={"bj-edge-02": "disk repair"})
    state = engine.start()
    assert (state.phase, EXIT_CODES[state.phase]) == (Phase.PARTIAL, 3)
    assert "bj-edge-02" in state.reason and "--node bj-edge-02" in state.reason
    assert deployer.running.get("bj-edge-02", "asr").stable != NEW
    assert deployer.running.get("bj-edge-03", "asr").stable == NEW


def test_bug4_analysis_reads_only_samples_after_the_deploy_and_warm_up(example_fleet: Fleet, tmp_path: Path) -> None:
    settings = Settings(interval_seconds=60.0, checks=2, window_seconds=120.0, warmup_seconds=30.0)
    engine, _, _, analyzer = _rig(example_fleet, tmp_path, ["pass"], settings=settings)
    state = engine.start()
    assert state.phase == Phase.PROMOTED
    assert len(analyzer.windows) == len(state.analysis) == 8
    for m, (at, window) in zip(state.analysis, analyzer.windows, strict=True):
        deployed = state.steps[m.step].deployed_at
        assert deployed is not None
        assert at - window >= deployed + 30.0 - 1e-6, (m.step, at - deployed, window)
    assert any(w < 120.0 for _, w in analyzer.windows)  # the first window of a step is cut at the deploy


def test_bug5_gone_target_has_a_way_out(example_fleet: Fleet, tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    engine, deployer, _, _ = _rig(example_fleet, tmp_path, ["pass"])
    state = engine.state
    state.deployer = {"kind": "sandbox", "simulator_url": "http://127.0.0.1:9", "instance": "1.000/42"}
    state.phase = Phase.ABORTING
    store.save(state)
    store.hold(state, state.nodes)
    Claims(tmp_path, "sandbox").add(state.id, f"rollout {state.id} is unfinished")
    from xzctl.cli._rollout_setup import build_deployer

    with pytest.raises(UnknownStateError, match="is gone") as info:
        build_deployer(state.deployer, store, state.id)
    assert info.value.hint is not None and f"xzctl rollout abort {state.id} --force" in info.value.hint
    with pytest.raises(ConflictError, match="depend on the previous sandbox"):
        start_sandbox(None, tmp_path)  # a new sandbox refuses while the old one's rollout is unfinished
    done = force_abort(store, store.load(state.id))
    assert (done.phase, done.cause, EXIT_CODES[done.phase]) == (Phase.ABORTED, Cause.FORCED, 3)
    assert "Check that bj-edge-01" in done.reason
    assert all(store.holder(n) is None for n in state.nodes)
    assert Claims(tmp_path, "sandbox").all() == {}
    assert deployer.applies == []  # nothing was deployed
    assert all(s.status != StepStatus.ANALYZING for s in done.steps)


@pytest.mark.parametrize(
    ("explicit", "environment", "sandbox_up", "expected"),
    [
        (None, "production", True, "pulumi"),  # a production spec never defaults to the sandbox
        (None, "staging", True, "sandbox"),
        (None, "staging", False, None),  # ... and a staging one never silently to Pulumi
        (None, "development", False, None),
        ("pulumi", "staging", False, "pulumi"),
        ("sandbox", "production", True, "sandbox"),
        ("sandbox", "staging", False, None),
        ("auto", "staging", True, None),
    ],
)
def test_bug6_the_deployer_is_explicit_or_from_the_spec(
    explicit: str | None, environment: str, sandbox_up: bool, expected: str | None
) -> None:
    if expected is None:
        with pytest.raises(BadInputError):
            choose_deployer(explicit, environment, sandbox_up)
    else:
        assert choose_deployer(explicit, environment, sandbox_up) == expected


def test_bug6_dry_run_names_deployer_prometheus_order_thresholds_and_hides_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["rollout", "canary", "asr", NEW, "--fleet", EXAMPLE, "--deployer", "pulumi", "--dry-run", "-o", "json"]
    argv += ["--prometheus", "http://ops:s3cr3t@127.0.0.1:9/prom", "--state-dir", str(tmp_path)]
    assert run(argv) == 0
    captured = capsys.readouterr()
    plan = json.loads(captured.out)
    assert plan["deployer"] == "pulumi" and plan["prometheus"] == "http://127.0.0.1:9/prom"
    assert plan["node_order"][:3] == ["bj-edge-01", "bj-edge-02", "bj-edge-03"] and len(plan["node_order"]) == 7
    assert plan["thresholds"]["p95_seconds"] > 0
    assert "deployer pulumi" in captured.err and "node order bj-edge-01" in captured.err
    assert "s3cr3t" not in captured.out + captured.err
    assert not (tmp_path / "rollouts").exists()  # nothing recorded


@pytest.mark.parametrize(
    ("url", "clean", "auth"),
    [
        ("http://127.0.0.1:9090", "http://127.0.0.1:9090", None),
        ("https://ops:p%40ss@prom.example:443/x?y=1", "https://prom.example:443/x?y=1", ("ops", "p@ss")),
        ("http://token@[::1]:9090/", "http://[::1]:9090/", ("token", "")),
    ],
)
def test_bug7_credentials_in_a_url_are_split_off(url: str, clean: str, auth: tuple[str, str] | None) -> None:
    assert split_url_credentials(url) == (clean, auth)


def test_bug7_an_operator_abort_exits_3(example_fleet: Fleet, tmp_path: Path) -> None:
    engine, deployer, store, _ = _rig(example_fleet, tmp_path, ["pass"])
    store.request_abort("asr-s4fe1", "operator")
    state = engine.start()
    assert (state.phase, state.cause, EXIT_CODES[state.phase]) == (Phase.ABORTED, Cause.OPERATOR, 3)
    assert deployer.running == spec_pins(example_fleet)


def test_exit_code_table_in_the_readme_matches_the_code() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Rollout phases and exit codes", 1)[1]
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| `(\w+)` \| (\d+) \|", section, re.M)}
    assert rows == {p.value: code for p, code in EXIT_CODES.items()}


def test_nan_up_is_not_reachable(example_fleet: Fleet, tmp_path: Path) -> None:
    _, _, _, analyzer = _rig(example_fleet, tmp_path, ["nan"])
    m = analyzer.measure(0, ["bj-edge-01"], 10.0)
    assert m.result == Result.ERROR and "not scraped" in m.reason
    assert math.isfinite(m.window_seconds)


def test_a_resume_on_a_changed_spec_asks_for_accept_spec_change(example_fleet: Fleet, tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(Path(EXAMPLE).read_text())
    held = Settings(interval_seconds=5.0, checks=1, on_unreachable="hold")
    engine, deployer, _, analyzer = _rig(example_fleet, tmp_path, ["pass"], settings=held, spec=str(spec))
    analyzer.down = ["bj-edge-01"]
    assert (engine.start().phase, engine.state.cause) == (Phase.PAUSED, Cause.HOLD)
    spec.write_text(spec.read_text() + "# edited while the rollout was held\n")
    analyzer.down = []
    with pytest.raises(BadInputError, match="changed since rollout asr-s4fe1 started") as info:
        engine.resume()
    assert info.value.hint is not None and "--accept-spec-change" in info.value.hint
    assert deployer.applies == []
    assert engine.resume(accept_spec_change=True).phase == Phase.PROMOTED
    assert any(e["kind"] == "spec-changed" for e in engine.state.events)


def test_bug8_rollouts_on_disjoint_nodes_share_a_target_without_undoing_each_other(
    example_fleet: Fleet, tmp_path: Path
) -> None:
    clock = FakeClock()
    deployer = FakeDeployer(spec_pins(example_fleet))
    store = MemoryStore(tmp_path)
    engines = []
    for rollout_id, nodes, script in (("asr-b3jng", ["bj-edge-01", "bj-edge-02"], ["inconclusive"]),
                                      ("asr-sh4ng", ["sh-edge-01", "sh-edge-02"], ["pass"])):  # fmt: skip
        state = new_rollout(
            example_fleet, EXAMPLE, "asr", NEW, rollout_id=rollout_id, baseline=deployer.current(),
            settings=Settings(interval_seconds=5.0, checks=1), thresholds=THRESHOLDS, deployer=deployer,
            prometheus_url="http://127.0.0.1:9", only_nodes=nodes,
        )  # fmt: skip
        assert state.nodes == nodes  # a per-node deployer locks only the rollout's own nodes
        analyzer = ScriptedAnalyzer(script, clock)
        engines.append(RolloutEngine(store, state, deployer, analyzer, sleep=clock.sleep, clock=clock.time))
    beijing, shanghai = engines
    assert beijing.start().phase == Phase.PAUSED  # its canary stays on bj-edge-01
    assert shanghai.start().phase == Phase.PROMOTED
    beijing.state.applied = None  # the worst case: what runs is unknown, so the restore sends every pin it has
    assert beijing.abort().phase == Phase.ABORTED
    running = deployer.running
    assert running.get("sh-edge-01", "asr").stable == NEW and running.get("sh-edge-02", "asr").stable == NEW
    assert running.get("bj-edge-01", "asr") == spec_pins(example_fleet).get("bj-edge-01", "asr")
    assert all(set(pins.nodes) <= {"bj-edge-01", "bj-edge-02"} for _, pins in deployer.applies[:1])


def test_a_pulumi_rollout_locks_whole_regions(example_fleet: Fleet) -> None:
    class Stacks(FakeDeployer):
        def config(self) -> dict[str, object]:
            return {"kind": "pulumi"}

    state = new_rollout(
        example_fleet, EXAMPLE, "asr", NEW, rollout_id="asr-p4lm1", baseline=spec_pins(example_fleet),
        settings=Settings(), thresholds=THRESHOLDS, deployer=Stacks(spec_pins(example_fleet)),
        prometheus_url="http://127.0.0.1:9", only_nodes=["bj-edge-01"],
    )  # fmt: skip
    # one stack update rewrites every node of the region: a second rollout there would be undone
    assert state.nodes == ["bj-edge-01", "bj-edge-02", "bj-edge-03"]
    assert [n for s in state.steps for n in s.nodes] == ["bj-edge-01"]


@pytest.mark.parametrize(("min_window", "first"), [(1.0, 1.0), (2.0, 2.0), (30.0, 4.0)])
def test_first_measurement_of_a_step_waits_for_two_scrapes_after_its_deploy(
    example_fleet: Fleet, tmp_path: Path, min_window: float, first: float
) -> None:
    """The first window of a step holds two scrapes (the analyzer's minimum), capped by the configured window."""
    settings = Settings(interval_seconds=1.0, checks=2, window_seconds=4.0)
    engine, _, _, analyzer = _rig(example_fleet, tmp_path, ["pass"], settings=settings)
    analyzer.min_window_seconds = min_window
    state = engine.start()
    assert state.phase == Phase.PROMOTED
    measured = list(zip(state.analysis, analyzer.windows, strict=True))
    firsts = [(m, at, w) for i, (m, (at, w)) in enumerate(measured) if i == 0 or measured[i - 1][0].step != m.step]
    assert len(firsts) == len(state.steps)
    for m, at, window in firsts:
        deployed = state.steps[m.step].deployed_at
        assert deployed is not None
        assert at - deployed == pytest.approx(first, abs=1e-6)
        assert window == pytest.approx(first, abs=1e-6)  # every sample after the deploy


@pytest.mark.parametrize(
    ("script", "limits", "phase", "tolerated"),
    [
        (["fail", "pass"], {}, Phase.ROLLED_BACK, 0),  # Argo's default failureLimit 0: the first failure decides
        (["fail"] + ["pass"] * 30, {"failure_limit": 1}, Phase.PROMOTED, 1),  # one noisy measurement tolerated
        (
            ["fail", "pass", "fail"] + ["pass"] * 30,
            {"failure_limit": 1},
            Phase.ROLLED_BACK,
            1,
        ),  # per step, not in a row
        (["inconclusive", "pass"], {}, Phase.PAUSED, 0),
        (["inconclusive"] + ["pass"] * 30, {"inconclusive_limit": 1}, Phase.PROMOTED, 1),
        # a canary with no finished request is waited for (pending) while the step's samples span one window ...
        (["idle", "idle", "fail"], {}, Phase.ROLLED_BACK, 0),
        # ... then counted as inconclusive (read over the whole step), and the operator decides: never an abort
        (["idle"] * 3 + ["fail"], {"inconclusive_limit": 1}, Phase.ROLLED_BACK, 1),
        (["idle"] * 5 + ["pass"], {"inconclusive_limit": 1}, Phase.PAUSED, 1),
    ],
)
def test_failure_and_inconclusive_limits_leave_room_for_noise(
    *,
    example_fleet: Fleet,
    tmp_path: Path,
    script: list[str],
    limits: dict[str, int],
    phase: Phase,
    tolerated: int,
) -> None:
    settings = Settings(interval_seconds=5.0, checks=3, **limits)
    engine, deployer, _, _ = _rig(example_fleet, tmp_path, script, settings)
    state = engine.start()
    assert state.phase is phase, state.reason
    assert sum(e["kind"] == "tolerated" for e in state.events) == tolerated
    if phase is Phase.ROLLED_BACK:
        assert deployer.running == spec_pins(example_fleet)
        assert state.steps[0].status is StepStatus.FAILED


def test_a_pause_stops_between_deploys_and_resume_carries_on(example_fleet: Fleet, tmp_path: Path) -> None:
    engine, deployer, store, analyzer = _rig(example_fleet, tmp_path, ["pass"])
    store.request_pause("asr-s4fe1")  # `rollout pause` asked of the process about to drive it
    state = engine.start()
    assert (state.phase, state.cause, EXIT_CODES[state.phase]) == (Phase.PAUSED, Cause.OPERATOR, 3)
    assert deployer.applies == [] and not store.pause_requested(state.id)  # stopped before any deploy, asked once
    assert "xzctl rollout resume asr-s4fe1" in state.reason
    clock = analyzer.clock
    resumed = RolloutEngine(
        store, store.load(state.id), deployer, analyzer, sleep=clock.sleep, clock=clock.time
    ).resume()
    assert resumed.phase is Phase.PROMOTED
    with pytest.raises(BadInputError, match="not progressing: nothing to pause"):
        RolloutEngine(store, resumed, deployer, analyzer).pause()
