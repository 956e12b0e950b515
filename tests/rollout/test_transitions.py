"""Every transition of the canary state machine, with a fake deployer, a scripted Prometheus and a fake clock.

A case is (situation, crash point, operator action, metric outcome):
- situation: where the rollout is when the process dies: during the deploy of step 1, 2 or 4, of the
  final promote, of the restore after a failed analysis or after an operator abort; or not crashed but
  paused (inconclusive analysis, or holding for an unreachable node);
- crash point: before the intent is written, after the intent, after the deploy is applied, after the
  confirmation is written;
- action: none, resume, abort, promote;
- outcome: what every measurement after the crash says (pass, fail, inconclusive, empty, nan, error).
Each case checks what runs on every node afterwards, the phase and the exit code against an oracle
written from the README's rules, and that no forward deploy ever happens once the rollout goes back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.rollout_fakes import (
    NEW,
    OUTCOMES,
    THRESHOLDS,
    Crash,
    FakeClock,
    FakeDeployer,
    MemoryStore,
    ScriptedAnalyzer,
    make_state,
)
from xzctl.errors import XzctlError
from xzctl.manifests.pins import ImagePins, spec_pins
from xzctl.rollout.engine import RolloutEngine
from xzctl.rollout.plan import canary_nodes, promoted_pins, scoped, step_locks, step_pins
from xzctl.rollout.start import new_rollout
from xzctl.rollout.state import BACKWARD, EXIT_CODES, Phase, RolloutState, Settings
from xzctl.spec import Fleet, load_fleet

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "fleet-1000.yaml")
CRASHES = ("step0", "step1", "step3", "promote", "restore_fail", "restore_abort")
POINTS = ("before_intent", "after_intent", "after_apply", "after_confirm")
ACTIONS = ("none", "resume", "abort", "promote")
PAUSES = ("paused_inconclusive", "paused_hold")
SETTINGS = Settings(interval_seconds=1.0, checks=2, error_limit=1, window_seconds=4.0)


@dataclass
class World:
    store: MemoryStore
    deployer: FakeDeployer
    clock: FakeClock
    baseline: ImagePins
    rollout_id: str
    state: RolloutState


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet(EXAMPLE).fleet


@pytest.fixture(scope="module")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state dir for the module (only sandbox claims would touch it): the fakes keep state in memory."""
    return tmp_path_factory.mktemp("transitions")


def _engine(world: World, state: RolloutState, script: list[str], down: list[str] | None = None) -> RolloutEngine:
    analyzer = ScriptedAnalyzer(script, world.clock)
    analyzer.down = down or []
    return RolloutEngine(world.store, state, world.deployer, analyzer, sleep=world.clock.sleep, clock=world.clock.time)


def _target(situation: str, baseline: ImagePins, state: RolloutState) -> ImagePins:
    """The pins of the deploy `situation` names, on the nodes that deploy holds (each deploy sends only those)."""
    steps = state.steps
    if situation.startswith("step"):
        k = int(situation[4:])
        return scoped(step_pins(baseline, "asr", NEW, canary_nodes(steps, k)), steps[k].nodes)
    if situation == "promote":
        return promoted_pins(baseline, "asr", NEW, canary_nodes(steps, len(steps) - 1))
    return scoped(baseline, canary_nodes(steps, 1))  # both restores go back from step 2


_CRASHED: dict[tuple[str, str], World] = {}


def crashed(fleet: Fleet, tmp: Path, situation: str, point: str) -> World:
    """A fresh copy of the world `crash_world` leaves (computed once per situation and point: 24 cases share it)."""
    key = (situation, point)
    if key not in _CRASHED:
        _CRASHED[key] = crash_world(fleet, tmp, situation, point)
    done = _CRASHED[key]
    store = MemoryStore(tmp)
    store.disk, store.lock_table, store.aborts = (
        dict(done.store.disk),
        dict(done.store.lock_table),
        set(done.store.aborts),
    )
    deployer = FakeDeployer(done.deployer.running)
    deployer.applies = list(done.deployer.applies)
    clock = FakeClock()
    clock.now = done.clock.now
    return World(store, deployer, clock, done.baseline, done.rollout_id, store.load(done.rollout_id))


def crash_world(fleet: Fleet, tmp: Path, situation: str, point: str) -> World:
    """Start a rollout and kill it at `point` of the deploy `situation` names; or leave it paused."""
    clock = FakeClock()
    baseline = spec_pins(fleet)
    deployer = FakeDeployer(baseline)
    store = MemoryStore(tmp)
    hold = situation == "paused_hold"
    settings = SETTINGS.model_copy(update={"on_unreachable": "hold"}) if hold else SETTINGS
    state = new_rollout(
        fleet, EXAMPLE, "asr", NEW, rollout_id="asr-t3st5", baseline=baseline, settings=settings,
        thresholds=THRESHOLDS, deployer=deployer, prometheus_url="http://127.0.0.1:9",
    )  # fmt: skip
    world = World(store, deployer, clock, baseline, state.id, state)
    script = {"restore_fail": ["pass", "pass", "fail"], "paused_inconclusive": ["inconclusive"]}.get(
        situation, ["pass"]
    )
    engine = _engine(world, state, script, down=["bj-edge-01"] if hold else None)
    deployer.phase = lambda: engine.state.phase
    if situation == "restore_abort":
        engine._on_event = lambda kind, s, _: (
            store.request_abort(s.id, "x") if kind == "applied" and s.step == 1 else None
        )
    target = _target(situation, baseline, state)
    armed = {"confirm": False, "done": False}

    def deploy_crash(pins: ImagePins) -> str | None:
        if armed["done"] or pins != target or (situation.startswith("restore") and state.phase not in BACKWARD):
            return None
        if point == "after_confirm":
            armed["confirm"] = True
            return None
        if point in ("after_intent", "after_apply"):
            armed["done"] = True
            return "before" if point == "after_intent" else "after"
        return None

    def store_crash(s: RolloutState) -> str | None:
        if armed["done"]:
            return None
        intent = s.pending is not None and ImagePins.from_json(s.pending.pins) == target
        if point == "before_intent" and intent and (not situation.startswith("restore") or s.phase in BACKWARD):
            armed["done"] = True
            return "before"
        if point == "after_confirm" and armed["confirm"]:
            armed["done"] = True
            return "after"
        return None

    deployer.crash, store.crash = deploy_crash, store_crash
    if situation in PAUSES:
        assert engine.start().phase == Phase.PAUSED
    else:
        with pytest.raises(Crash):
            engine.start()
    deployer.crash, store.crash = (lambda _: None), (lambda _: None)
    world.state = store.load(state.id)
    return world


def expected(situation: str, action: str, outcome: str, before: RolloutState) -> tuple[Phase | None, str]:
    """(phase afterwards or None for a refused action, what runs: baseline | promoted | canary<k> | unchanged)."""
    phase = before.phase
    if action == "none":
        return phase, "recorded"
    if phase in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.ABORTED):
        return None, "unchanged"  # already finished: every action is refused
    if action == "abort":
        return (Phase.ROLLED_BACK if phase == Phase.ROLLING_BACK else Phase.ABORTED), "baseline"
    if phase in BACKWARD:
        if action == "resume":
            return (Phase.ROLLED_BACK if phase == Phase.ROLLING_BACK else Phase.ABORTED), "baseline"
        return None, "unchanged"
    paused_inconclusive = situation == "paused_inconclusive"
    if action == "promote" and not paused_inconclusive:
        return None, "unchanged"
    if action == "resume" and paused_inconclusive:
        return None, "unchanged"
    if situation == "promote":
        return Phase.PROMOTED, "promoted"  # every step had passed before the crash: no analysis left
    step = 1 if paused_inconclusive else before.step  # promote accepts step 0 and analyses step 1
    return {
        "pass": (Phase.PROMOTED, "promoted"),
        "fail": (Phase.ROLLED_BACK, "baseline"),
        "inconclusive": (Phase.PAUSED, f"canary{step}"),
    }.get(outcome, (Phase.ABORTED, "baseline"))


def _act(engine: RolloutEngine, action: str) -> int:
    try:
        if action == "resume":
            state = engine.resume()
        elif action == "abort":
            state = engine.abort()
        elif action == "promote":
            state = engine.promote()
        else:
            state = engine.state
    except XzctlError as exc:
        return exc.exit_code
    return EXIT_CODES[state.phase]


CASES = [
    *itertools.product(CRASHES, POINTS, ACTIONS, OUTCOMES),
    *((s, "none", a, o) for s, a, o in itertools.product(PAUSES, ACTIONS, OUTCOMES)),
]


def test_the_table_has_at_least_200_cases() -> None:
    assert len(CASES) >= 200


# Every case, checked in a loop per situation: pytest's own cost per test item was six times that of the check.
@pytest.mark.parametrize("situation", sorted({c[0] for c in CASES}))
def test_transitions(fleet: Fleet, state_root: Path, situation: str) -> None:
    failures: dict[str, str] = {}
    for case in (c for c in CASES if c[0] == situation):
        try:
            _transition(fleet, state_root, case)
        except (Exception, pytest.fail.Exception) as exc:  # pytest.raises' "did not raise" is not an Exception
            failures["-".join(case)] = f"{type(exc).__name__}: {str(exc)[:300]}"
    assert not failures, "\n".join(f"{name}: {why}" for name, why in failures.items())


def _transition(fleet: Fleet, state_root: Path, case: tuple[str, str, str, str]) -> None:
    situation, point, action, outcome = case
    world = crashed(fleet, state_root, situation, point)
    before = world.store.load(world.rollout_id)  # a copy: the engine changes world.state in place
    running_before = world.deployer.running
    engine = _engine(world, world.state, [outcome])
    world.deployer.phase = lambda: engine.state.phase
    code = _act(engine, action)
    after = world.store.load(world.rollout_id)
    phase, runs = expected(situation, action, outcome, before)

    if phase is None:
        assert code == 2, after.reason
        assert world.deployer.running == running_before
        assert after.phase == before.phase
    else:
        assert after.phase == phase, after.reason
        assert code == EXIT_CODES[phase]
    running = world.deployer.running
    base, steps = world.baseline, after.steps
    if runs == "baseline":
        assert running == base
    elif runs == "promoted":
        assert running == promoted_pins(base, "asr", NEW, canary_nodes(steps, len(steps) - 1))
        assert all(s.status == "passed" for s in after.steps)
    elif runs.startswith("canary"):
        assert running == step_pins(base, "asr", NEW, canary_nodes(steps, int(runs[6:])))
    elif runs == "recorded":
        # a crashed rollout's file tells the truth: what runs is what it confirmed, or what it meant to apply
        applied = ImagePins.from_json(after.applied) if after.applied is not None else None
        pending = ImagePins.from_json(after.pending.pins) if after.pending is not None else None
        covered = (
            [applied] if pending is None else [applied, ImagePins({**(applied or running).nodes, **pending.nodes})]
        )
        assert running in covered, "the state file does not cover what runs"
    # once going back, nothing but the baseline is ever deployed (on the nodes it holds); a finished rollout never
    # says analyzing
    assert all(pins == scoped(base, list(pins.nodes)) for phase_, pins in world.deployer.applies if phase_ in BACKWARD)
    if after.phase in (Phase.ROLLED_BACK, Phase.ABORTED):
        assert "analyzing" not in [s.status for s in after.steps]
    if after.terminal:  # its locks are gone, or stale (a crash after the final write): a new rollout may start
        world.store.hold(make_state(fleet, "asr-n3xt2", after.nodes), after.nodes)
    else:  # a crashed or paused rollout holds at most the nodes of the step it was on (or of its restore/promote)
        k = min(after.step, len(after.steps) - 1)
        last = list(range(k + 1)) if after.phase in BACKWARD or after.step >= len(after.steps) else [k]
        assert set(world.store.held(after)) <= set(step_locks(after.steps, last))
