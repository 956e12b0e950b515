"""Issue 25 item 5: a rollout's locks follow its step, and a deploy builds on what other rollouts did meanwhile.

Two or three rollouts share one state store, one fake target and one fake clock; what one does while another
runs is done from the other's event hook (the fakes run synchronously). No real time passes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.rollout_fakes import NEW, OLD, THRESHOLDS, FakeClock, FakeDeployer, MemoryStore, ScriptedAnalyzer
from xzctl.errors import ConflictError
from xzctl.manifests.pins import ImagePins, ServicePin, spec_pins
from xzctl.rollout.engine import RolloutEngine
from xzctl.rollout.locks import NodeLockedError
from xzctl.rollout.start import new_rollout
from xzctl.rollout.state import Cause, Phase, RolloutState, Settings, Step
from xzctl.rollout.transitions import LOCK_WAIT_SECONDS
from xzctl.spec import Fleet, bundled_example_path
from xzctl.state import Holder

EXAMPLE = str(bundled_example_path())
NEW_TTS = "registry.xiaozhi.example/inference/tts:1.2.0"
OTHER_ASR = "registry.xiaozhi.example/inference/asr:1.9.0"
SETTINGS = Settings(interval_seconds=5.0, checks=2)
# asr steps on the example: bj-edge-01 | bj-edge-02, bj-edge-03 | sh-edge-01, sh-edge-02 | gz-edge-01, gz-edge-02


@dataclass
class World:
    fleet: Fleet
    store: MemoryStore
    clock: FakeClock = field(default_factory=FakeClock)
    deployer: FakeDeployer = field(init=False)

    def __post_init__(self) -> None:
        self.deployer = FakeDeployer(spec_pins(self.fleet))

    def engine(
        self,
        rollout_id: str,
        script: list[str],
        *,
        service: str = "asr",
        image: str = NEW,
        nodes: list[str] | None = None,
        hook: Callable[[str, RolloutState], None] | None = None,
    ) -> RolloutEngine:
        state = new_rollout(
            self.fleet, EXAMPLE, service, image, rollout_id=rollout_id, baseline=self.deployer.current(),
            settings=SETTINGS, thresholds=THRESHOLDS, deployer=self.deployer, prometheus_url="http://127.0.0.1:9",
            only_nodes=nodes,
        )  # fmt: skip
        analyzer = ScriptedAnalyzer(script, self.clock)
        sink = (lambda kind, s, _detail: hook(kind, s)) if hook is not None else None
        return RolloutEngine(
            self.store, state, self.deployer, analyzer, on_event=sink, sleep=self.clock.sleep, clock=self.clock.time
        )

    def pin(self, node: str, service: str) -> ServicePin:
        return self.deployer.running.get(node, service)

    def set_pin(self, node: str, service: str, pin: ServicePin) -> None:
        self.deployer.running = self.deployer.running.with_pin(node, service, pin)


@pytest.fixture
def world(example_fleet: Fleet, tmp_path: Path) -> World:
    return World(example_fleet, MemoryStore(tmp_path))


def _other(world: World, rollout_id: str, node: str, phase: Phase, *, alive: bool) -> None:
    """A tts rollout `rollout_id` in `phase` holding `node`; its process alive or gone (start time mismatch)."""
    pins = world.deployer.current().to_json()
    state = RolloutState(
        id=rollout_id, service="tts", image=NEW_TTS, fleet=EXAMPLE, spec_hash="0" * 64, settings=SETTINGS,
        thresholds=THRESHOLDS, deployer={"kind": "fake"}, prometheus_url="http://127.0.0.1:9", nodes=[node],
        steps=[Step(name=f"canary node {node}", region="shanghai", nodes=[node])], baseline=pins, applied=pins,
        phase=phase, reason="paused by the operator" if phase == Phase.PAUSED else "",
    )  # fmt: skip
    world.store.save(state)
    me = Holder.me(rollout_id)
    world.store.lock_table[node] = me if alive else Holder(rollout_id, os.getpid(), socket.gethostname(), -1)


def test_a_rollout_holds_the_nodes_of_its_step_only(world: World) -> None:
    seen: list[tuple[str, list[str]]] = []
    engine = world.engine("asr-st3p1", ["pass"], hook=lambda kind, s: seen.append((kind, world.store.held(s))))
    final = engine.start()
    assert final.phase == Phase.PROMOTED
    held = [(kind, nodes) for kind, nodes in seen if kind in ("applied", "promoted")]
    assert held == [
        ("applied", ["bj-edge-01"]),
        ("applied", ["bj-edge-02", "bj-edge-03"]),
        ("applied", ["sh-edge-01", "sh-edge-02"]),
        ("applied", ["gz-edge-01", "gz-edge-02"]),
        ("promoted", [n for s in final.steps for n in s.nodes]),  # a promote changes every canary node
    ]
    assert world.store.held(final) == [] and world.store.driver(final) is None


def test_a_canary_on_a_node_the_running_rollout_has_not_reached_runs(world: World) -> None:
    """The issue's case: a tts canary on a node the running asr rollout reaches later (it used to exit 5)."""
    outcome: dict[str, Any] = {}

    def tts_meanwhile(kind: str, s: RolloutState) -> None:
        if kind == "applied" and s.step == 0 and not outcome:
            with pytest.raises(NodeLockedError, match="rollout asr-f1rst1 is running on edge node bj-edge-01") as info:
                world.engine("tts-0nbj1", ["pass"], service="tts", image=NEW_TTS, nodes=["bj-edge-01"]).start()
            outcome["refused"] = info.value.exit_code
            tts = world.engine("tts-0nsh1", ["pass"], service="tts", image=NEW_TTS, nodes=["sh-edge-01"])
            outcome["tts"] = tts.start().phase

    final = world.engine("asr-f1rst1", ["pass"], hook=tts_meanwhile).start()
    assert outcome == {"refused": 5, "tts": Phase.PROMOTED}
    assert "tts-0nbj1" not in world.store.disk  # refused before anything was recorded
    assert final.phase == Phase.PROMOTED
    # the asr rollout reached sh-edge-01 after the tts one promoted there, and kept its tts release
    assert world.pin("sh-edge-01", "tts") == ServicePin(NEW_TTS)
    assert all(world.pin(n, "asr") == ServicePin(NEW) for n in final.nodes)


@pytest.mark.parametrize(
    "case",
    [
        # (the holder's phase, its process alive, what the pause says, waits for it)
        (Phase.PROGRESSING, True, "rollout tts-h0ld1 is running on edge node sh-edge-01", True),
        (Phase.PROGRESSING, False, "was interrupted", False),
        (Phase.PAUSED, False, "is held by rollout tts-h0ld1, paused there", False),
        (Phase.PROMOTED, False, None, False),  # finished: its lock is stale, the step proceeds
    ],
    ids=["running", "interrupted", "paused", "finished"],
)
def test_a_step_reaching_a_node_another_rollout_holds(world: World, case: tuple[Phase, bool, str | None, bool]) -> None:
    phase, alive, needle, waits = case
    waited: list[float] = []

    def place(kind: str, s: RolloutState) -> None:
        if kind == "passed" and s.step == 1:
            _other(world, "tts-h0ld1", "sh-edge-01", phase, alive=alive)
        if kind == "waiting":
            waited.append(world.clock.time())

    engine = world.engine("asr-w41t1", ["pass"], hook=place)
    state = engine.start()
    if needle is None:
        assert state.phase == Phase.PROMOTED and not waited
        return
    assert (state.phase, state.cause) == (Phase.PAUSED, Cause.LOCKED)
    assert needle in state.reason and "then: xzctl rollout resume asr-w41t1" in state.reason
    assert world.clock.time() - waited[0] >= (LOCK_WAIT_SECONDS if waits else 0.0)
    assert (world.clock.time() - waited[0] < SETTINGS.interval_seconds) is not waits
    assert world.store.held(state) == []  # paused before deploying: it holds nothing
    assert world.pin("sh-edge-01", "asr") == ServicePin(OLD)
    world.store.save(world.store.load("tts-h0ld1").model_copy(update={"phase": Phase.ABORTED}))  # the other ends
    assert engine.resume().phase == Phase.PROMOTED
    assert world.pin("sh-edge-01", "asr") == ServicePin(NEW)


@pytest.mark.parametrize("alive", [True, False], ids=["running", "interrupted"])
def test_a_restore_that_meets_a_held_node_stops_with_the_command_that_finishes_it(world: World, alive: bool) -> None:
    def place(kind: str, s: RolloutState) -> None:
        if kind == "applied" and s.step == 2:  # bj-edge-01 passed long ago and was let go
            _other(world, "tts-h0ld2", "bj-edge-01", Phase.PROGRESSING, alive=alive)

    engine = world.engine("asr-b4ck1", ["pass", "pass", "pass", "pass", "fail"], hook=place)
    before = world.clock.time()
    with pytest.raises(ConflictError, match="cannot restore edge node bj-edge-01") as info:
        engine.start()
    assert info.value.hint is not None and "then: xzctl rollout resume asr-b4ck1" in info.value.hint
    assert (world.clock.time() - before >= LOCK_WAIT_SECONDS) is alive
    recorded = world.store.load("asr-b4ck1")
    assert recorded.phase == Phase.ROLLING_BACK and world.pin("bj-edge-01", "asr").canary == NEW
    world.store.save(world.store.load("tts-h0ld2").model_copy(update={"phase": Phase.PROMOTED}))
    final = RolloutEngine(world.store, recorded, world.deployer, engine.analyzer, clock=world.clock.time).resume()
    assert final.phase == Phase.ROLLED_BACK
    assert all(world.pin(n, "asr") == ServicePin(OLD) for n in final.nodes)


@pytest.mark.parametrize(
    "case",
    [
        # (what another rollout leaves on sh-edge-01 before the asr rollout reaches it, analysis, asr after)
        ("asr canary", ["pass"], None),
        ("asr promoted", ["pass"], ServicePin(NEW)),
        ("asr promoted", ["pass", "pass", "pass", "pass", "fail"], ServicePin(OTHER_ASR)),  # restores *that*
        ("tts promoted", ["pass", "pass", "pass", "pass", "fail"], ServicePin(OLD)),
    ],
    ids=["other-canary-pauses", "promoted-then-promote", "promoted-then-rollback", "other-service-kept"],
)
def test_a_step_builds_on_what_runs_on_the_nodes_it_reaches(
    world: World, case: tuple[str, list[str], ServicePin | None]
) -> None:
    meanwhile, script, asr_after = case

    def other_rollout(kind: str, s: RolloutState) -> None:
        if kind == "applied" and s.step == 0:
            if meanwhile == "asr canary":
                world.set_pin("sh-edge-01", "asr", ServicePin(OLD, OTHER_ASR))
            elif meanwhile == "asr promoted":
                world.set_pin("sh-edge-01", "asr", ServicePin(OTHER_ASR))
            else:
                world.set_pin("sh-edge-01", "tts", ServicePin(NEW_TTS))

    state = world.engine("asr-b4s31", script, hook=other_rollout).start()
    if asr_after is None:
        assert (state.phase, state.cause) == (Phase.PAUSED, Cause.LOCKED)
        assert f"sh-edge-01 runs a asr canary of another rollout ({OTHER_ASR})" in state.reason
        assert world.store.held(state) == [] and world.pin("sh-edge-01", "asr") == ServicePin(OLD, OTHER_ASR)
        return
    assert world.pin("sh-edge-01", "asr") == asr_after
    assert world.pin("bj-edge-01", "asr") == ServicePin(NEW if state.phase == Phase.PROMOTED else OLD)
    if meanwhile == "tts promoted":
        assert world.pin("sh-edge-01", "tts") == ServicePin(NEW_TTS)


def test_a_restore_with_unknown_applied_pins_keeps_what_other_rollouts_did(world: World) -> None:
    """A failed deploy leaves the applied pins unknown, so the restore sends every pin it has: those of other
    services come from what runs now, not from when the rollout started."""

    def meanwhile(kind: str, s: RolloutState) -> None:
        if kind == "passed" and s.step == 0:  # bj-edge-01 let go: a tts rollout promotes there
            world.set_pin("bj-edge-01", "tts", ServicePin(NEW_TTS))

    world.deployer.fail = lambda pins: "bj-edge-02" in pins.nodes and pins.get("bj-edge-02", "asr").canary == NEW
    state = world.engine("asr-unkn1", ["pass"], hook=meanwhile).start()
    assert (state.phase, state.cause) == (Phase.ROLLED_BACK, Cause.DEPLOY_FAILED)
    assert world.pin("bj-edge-01", "tts") == ServicePin(NEW_TTS)
    assert world.pin("bj-edge-01", "asr") == ServicePin(OLD)
    assert ImagePins.from_json(state.baseline).get("bj-edge-01", "tts") == ServicePin(NEW_TTS)


def test_an_abort_while_waiting_for_a_node_restores_only_what_it_changed(world: World) -> None:
    def place(kind: str, s: RolloutState) -> None:
        if kind == "passed" and s.step == 1:
            _other(world, "tts-h0ld3", "sh-edge-01", Phase.PROGRESSING, alive=False)

    engine = world.engine("asr-4b0rt", ["pass"], hook=place)
    assert engine.start().cause == Cause.LOCKED
    final = engine.abort()  # sh-edge-01 never took its canary: the restore does not wait for it
    assert final.phase == Phase.ABORTED
    assert all(world.pin(n, "asr") == ServicePin(OLD) for n in final.nodes)
    holder = world.store.holder("sh-edge-01")
    assert holder is not None and holder.owner == "tts-h0ld3"


class RegionDeployer(FakeDeployer):
    """A target whose one update rewrites a whole region, as a Pulumi stack does."""

    def config(self) -> dict[str, Any]:
        return {"kind": "pulumi"}


def test_a_region_wide_deploy_holds_the_region_and_keeps_what_others_run_there(world: World) -> None:
    world.deployer = RegionDeployer(world.deployer.running)
    beijing = ["bj-edge-01", "bj-edge-02", "bj-edge-03"]
    held: list[list[str]] = []

    def meanwhile(kind: str, s: RolloutState) -> None:
        if kind in ("applied", "promoted"):
            held.append(world.store.held(s))
        if kind == "passed":  # another rollout's asr canary on a node of the region this one does not roll to
            world.set_pin("bj-edge-02", "asr", ServicePin(OLD, OTHER_ASR))

    state = world.engine("asr-r3g10", ["pass"], nodes=["bj-edge-01"], hook=meanwhile).start()
    assert state.phase == Phase.PROMOTED and state.steps[0].locks == beijing
    assert held == [beijing, beijing]
    assert world.pin("bj-edge-01", "asr") == ServicePin(NEW)
    assert world.pin("bj-edge-02", "asr") == ServicePin(OLD, OTHER_ASR)  # the promote's region update kept it
