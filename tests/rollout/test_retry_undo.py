"""`rollout retry` (run a rolled-back or aborted rollout again from where it stopped) and `rollout undo` (back to
the release before a promoted rollout), decided with the fakes: no cluster, no Prometheus, no time passing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.rollout_fakes import NEW, OLD, THRESHOLDS, FakeClock, FakeDeployer, MemoryStore, ScriptedAnalyzer
from xzctl.errors import BadInputError, NotFoundError
from xzctl.manifests.pins import ImagePins, ServicePin, spec_pins
from xzctl.rollout.engine import RolloutEngine
from xzctl.rollout.plan import canary_nodes, scoped, step_pins
from xzctl.rollout.start import new_rollout, undo_source
from xzctl.rollout.state import Cause, Phase, RolloutState, Settings, StepStatus
from xzctl.rollout.transitions import force_abort
from xzctl.spec import Fleet, bundled_example_path

EXAMPLE = str(bundled_example_path())
SETTINGS = Settings(interval_seconds=5.0, checks=2)
PASS = ["pass"]


class Rig:
    def __init__(self, fleet: Fleet, root: Path) -> None:
        self.fleet, self.store, self.clock = fleet, MemoryStore(root), FakeClock()
        self.deployer = FakeDeployer(spec_pins(fleet))
        self.analyzer = ScriptedAnalyzer(PASS, self.clock)

    def engine(self, state: RolloutState, script: list[str]) -> RolloutEngine:
        self.analyzer = ScriptedAnalyzer(script, self.clock)
        return RolloutEngine(
            self.store, state, self.deployer, self.analyzer, sleep=self.clock.sleep, clock=self.clock.time
        )

    def rollout(self, rollout_id: str, image: str, script: list[str], nodes: list[str] | None = None) -> RolloutEngine:
        state = new_rollout(
            self.fleet, EXAMPLE, "asr", image, rollout_id=rollout_id, baseline=self.deployer.current(),
            settings=SETTINGS, thresholds=THRESHOLDS, deployer=self.deployer, prometheus_url="http://127.0.0.1:9",
            only_nodes=nodes,
        )  # fmt: skip
        return self.engine(state, script)

    def asr(self) -> dict[str, ServicePin]:
        return {n: pins["asr"] for n, pins in self.deployer.running.nodes.items()}


@pytest.fixture
def rig(example_fleet: Fleet, tmp_path: Path) -> Rig:
    return Rig(example_fleet, tmp_path)


def _stopped_by_abort_at_step_1(rig: Rig) -> RolloutState:
    engine = rig.rollout("asr-r3try", NEW, PASS)
    engine._on_event = lambda kind, s, _: (
        rig.store.request_abort(s.id, "x") if kind == "applied" and s.step == 1 else None
    )
    return engine.start()


def _deploy_failed_at_promote(rig: Rig) -> RolloutState:
    rig.deployer.fail = lambda pins: pins.nodes.get("bj-edge-01", {}).get("asr") == ServicePin(NEW)
    state = rig.rollout("asr-r3try", NEW, PASS).start()
    rig.deployer.fail = lambda _: False
    return state


# how the first run ends -> (phase, cause, the step it stopped at, the steps already passed)
ENDINGS: dict[str, tuple[Callable[[Rig], RolloutState], Phase, Cause, int, int]] = {
    "analysis-failed-at-step-3": (
        lambda rig: rig.rollout("asr-r3try", NEW, ["pass"] * 4 + ["fail"]).start(),
        Phase.ROLLED_BACK, Cause.ANALYSIS_FAILED, 2, 2,
    ),
    "aborted-at-step-2": (_stopped_by_abort_at_step_1, Phase.ABORTED, Cause.OPERATOR, 1, 1),
    "missing-data-at-step-1": (
        lambda rig: rig.rollout("asr-r3try", NEW, ["empty"]).start(), Phase.ABORTED, Cause.MISSING_DATA, 0, 0,
    ),
    "deploy-failed-at-promote": (_deploy_failed_at_promote, Phase.ROLLED_BACK, Cause.DEPLOY_FAILED, 4, 4),
}  # fmt: skip


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_retry_carries_on_from_the_step_it_stopped_at(rig: Rig, ending: str) -> None:
    first_run, phase, cause, stopped, passed = ENDINGS[ending]
    ended = first_run(rig)
    assert (ended.phase, ended.cause, ended.step) == (phase, cause, stopped)
    assert rig.asr() == {n: ServicePin(OLD) for n in rig.asr()}  # restored everywhere
    applies = len(rig.deployer.applies)
    engine = rig.engine(rig.store.load(ended.id), PASS)
    final = engine.retry()
    assert final.phase == Phase.PROMOTED
    assert rig.asr() == {n: ServicePin(NEW) for n in rig.asr()}
    resumed_at = min(stopped, len(ended.steps) - 1)  # a failed promote is judged again on the last step
    # the first deploy of the retry gives the canary back to every node up to that step, in one deploy
    first = rig.deployer.applies[applies][1]
    expected = step_pins(spec_pins(rig.fleet), "asr", NEW, canary_nodes(ended.steps, resumed_at))
    assert first == scoped(expected, canary_nodes(ended.steps, resumed_at))
    # the steps that had passed keep their verdicts: only the rest are measured again
    measured = {m.step for m in final.analysis[len(ended.analysis) :]}
    assert measured == set(range(resumed_at, len(final.steps)))
    assert [s.status for s in final.steps[:passed]] == [StepStatus.PASSED] * passed
    assert [e["kind"] for e in final.events].count("retried") == 1
    assert rig.store.held(final) == [] and rig.store.driver(final) is None


@pytest.mark.parametrize(
    "case",
    [
        # (how the rollout stands, what retry says, the command it names)
        ("promoted", "is promoted: only a rolled-back or aborted rollout is retried", "xzctl rollout undo asr"),
        ("interrupted", "is progressing", "xzctl rollout resume asr-r3try"),
        ("forced", "was aborted with --force", f"xzctl rollout canary asr {NEW}"),
        ("spec-changed", "changed since rollout asr-r3try started", "--accept-spec-change"),
    ],
    ids=lambda case: case[0],
)
def test_retry_refuses_what_it_cannot_carry_on(rig: Rig, tmp_path: Path, case: tuple[str, str, str]) -> None:
    how, needle, hint = case
    if how == "promoted":
        state = rig.rollout("asr-r3try", NEW, PASS).start()
    elif how == "spec-changed":
        spec = tmp_path / "fleet.yaml"
        spec.write_text(Path(EXAMPLE).read_text())
        state = rig.rollout("asr-r3try", NEW, ["fail"]).state
        state.fleet = str(spec)
        from xzctl.rollout.start import file_hash

        state.spec_hash = file_hash(str(spec))
        state = rig.engine(state, ["fail"]).start()
        spec.write_text(spec.read_text() + "\n# changed\n")
    else:
        state = rig.rollout("asr-r3try", NEW, PASS).state
        rig.store.save(state)
        if how == "forced":
            state = force_abort(rig.store, state)
    applies = len(rig.deployer.applies)
    with pytest.raises(BadInputError, match=needle) as info:
        rig.engine(rig.store.load(state.id), PASS).retry()
    assert info.value.hint is not None and hint in info.value.hint
    assert len(rig.deployer.applies) == applies  # nothing deployed
    if how == "spec-changed":
        assert rig.engine(rig.store.load(state.id), PASS).retry(accept_spec_change=True).phase == Phase.PROMOTED


def test_undo_returns_the_promoted_nodes_to_the_release_before(rig: Rig) -> None:
    rig.rollout("asr-0ld1", NEW, PASS, nodes=["bj-edge-01", "sh-edge-01"]).start()
    source, image = undo_source(rig.store, "asr", None)
    assert (source.id, image) == ("asr-0ld1", OLD)
    undo = rig.rollout("asr-und01", image, PASS, nodes=canary_nodes(source.steps, len(source.steps) - 1))
    assert undo.start().phase == Phase.PROMOTED
    assert rig.deployer.running == spec_pins(rig.fleet)  # every node back on the spec's release
    assert undo_source(rig.store, "asr", None)[0].id == "asr-und01"  # the undo is now the latest promotion


def _mixed(rig: Rig) -> None:
    rig.deployer.running = rig.deployer.running.with_pin("sh-edge-01", "asr", ServicePin(NEW))
    rig.rollout("asr-m1x3d", "registry.xiaozhi.example/inference/asr:2.0.0", PASS).start()


@pytest.mark.parametrize(
    "case",
    [
        # (what is recorded, undo of which, the error, what it says)
        ("nothing", ("asr", None), NotFoundError, "no promoted asr rollout recorded"),
        ("rolled-back", (None, "asr-f41l1"), BadInputError, "is rolled_back: only a promoted (or partial)"),
        ("mixed", ("asr", None), BadInputError, "replaced more than one asr image"),
        ("other-service", ("tts", None), NotFoundError, "no promoted tts rollout recorded"),
        ("bad-service", ("speech", None), BadInputError, "'speech' is not a service a rollout can change"),
    ],
    ids=lambda case: case[0],
)
def test_undo_refuses_without_one_previous_release(
    rig: Rig, case: tuple[str, tuple[str | None, str | None], type[Exception], str]
) -> None:
    recorded, (service, rollout_id), error, needle = case
    if recorded == "rolled-back":
        rig.rollout("asr-f41l1", NEW, ["fail"]).start()
    elif recorded == "mixed":
        _mixed(rig)
    elif recorded == "other-service":
        rig.rollout("asr-0ld2", NEW, PASS).start()
    with pytest.raises(error, match=re.escape(needle)):
        undo_source(rig.store, service, rollout_id)


def test_undo_picks_the_latest_promotion_of_the_service(rig: Rig) -> None:
    rig.rollout("asr-f1rst", NEW, PASS).start()
    later = "registry.xiaozhi.example/inference/asr:2.0.0"
    rig.rollout("asr-s3cnd", later, PASS).start()
    rig.rollout("asr-f41l2", OLD, ["fail"]).start()  # not promoted: not a release to go back from
    source, image = undo_source(rig.store, "asr", None)
    assert (source.id, image) == ("asr-s3cnd", NEW)
    assert undo_source(rig.store, None, "asr-f1rst")[1] == OLD  # a named rollout: the release it replaced
    assert ImagePins.from_json(source.baseline).get("bj-edge-01", "asr") == ServicePin(NEW)
