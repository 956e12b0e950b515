"""Canary rollouts judged by a real Prometheus fed by the simulator (1 s scrapes, 1 s analysis intervals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.sandbox import wait_for_query
from tests.rollout._live import NEW_ASR, OLD_ASR, WINDOW, asr_images, make_engine, ready, wait_all_up
from xzctl.errors import ExternalToolError
from xzctl.metrics import queries as q
from xzctl.rollout.analysis import Thresholds
from xzctl.rollout.deploy import SimulatorDeployer
from xzctl.rollout.engine import RolloutEngine, Settings
from xzctl.rollout.state import RolloutState, StateStore
from xzctl.sandbox import SandboxInfo, SimulatorClient

pytestmark = pytest.mark.prometheus
Factory = Callable[..., SandboxInfo]


def test_healthy_canary_goes_through_every_step(sandbox_factory: Factory) -> None:
    box = sandbox_factory()
    ready(box)
    engine, events = make_engine(box)
    state = engine.start()
    assert state.phase == "promoted", state.reason
    assert [s.status for s in state.steps] == ["passed"] * 4
    assert [k for k, _ in events if k == "applied"] == ["applied"] * 4
    assert sum(m.result == "success" for m in state.analysis) == 8
    assert all(pin == {"stable": NEW_ASR, "canary": None} for pin in asr_images(box).values())
    assert StateStore(box.state_dir).holder("beijing") is None  # locks released


@pytest.mark.parametrize(
    ("profile", "needle"),
    [({"error_rate": 0.05}, "error_ratio canary"), ({"latency_factor": 2.0}, "p95_seconds canary")],
)
def test_regressed_canary_is_rolled_back_within_two_intervals(
    sandbox_factory: Factory, profile: dict[str, float], needle: str
) -> None:
    box = sandbox_factory()
    SimulatorClient(box.simulator_url).control({"action": "image_profile", "image": NEW_ASR, **profile})
    ready(box)
    engine, _ = make_engine(box)
    state = engine.start()
    assert state.phase == "rolled_back" and state.cause == "analysis_failed"
    assert needle in state.reason
    assert len(state.analysis) <= 2  # the failure came at the first or second measurement
    assert state.analysis[-1].result == "failure" and state.analysis[-1].step == 0
    assert all(pin == {"stable": OLD_ASR, "canary": None} for pin in asr_images(box).values())


def test_metrics_gap_aborts_and_never_promotes(sandbox_factory: Factory) -> None:
    box = sandbox_factory()
    ready(box)
    client = SimulatorClient(box.simulator_url)

    def gap_after_first_deploy(kind: str, state: RolloutState, detail: dict[str, Any]) -> None:
        if kind == "applied" and state.step == 0:
            client.control({"action": "metrics_gap", "node": state.steps[0].nodes[0], "seconds": 120})

    engine, _ = make_engine(box, on_event=gap_after_first_deploy)
    state = engine.start()
    assert state.phase == "aborted" and state.cause == "missing_data"
    errors = [m for m in state.analysis if m.result == "error"]
    assert len(errors) == 5  # the fifth consecutive error is past the limit of 4
    assert all(s.status != "passed" for s in state.steps)
    assert all(pin == {"stable": OLD_ASR, "canary": None} for pin in asr_images(box).values())


def test_unreachable_node_is_skipped_and_keeps_its_image(sandbox_factory: Factory) -> None:
    box = sandbox_factory()
    ready(box)
    SimulatorClient(box.simulator_url).control({"action": "node_down", "node": "sh-edge-01"})
    wait_all_up(box, up=box.nodes - 1)
    engine, events = make_engine(box, settings=Settings(interval_seconds=1.0, checks=1, window_seconds=WINDOW))
    state = engine.start()
    assert state.phase == "promoted", state.reason
    assert list(state.skipped_nodes) == ["sh-edge-01"]
    assert any(k == "skipped" and "sh-edge-01" in d["message"] for k, d in events)
    images = asr_images(box)
    assert images.pop("sh-edge-01") == {"stable": OLD_ASR, "canary": None}
    assert all(pin == {"stable": NEW_ASR, "canary": None} for pin in images.values())


def test_hold_policy_pauses_before_deploying_then_resumes(sandbox_factory: Factory) -> None:
    box = sandbox_factory()
    ready(box)
    client = SimulatorClient(box.simulator_url)
    client.control({"action": "node_down", "node": "bj-edge-01"})
    wait_for_query(box.prometheus_url, q.node_up(filters={"node": "bj-edge-01"}), lambda s: s[0].value == 0, 30)
    engine, _ = make_engine(
        box, settings=Settings(interval_seconds=1.0, checks=1, on_unreachable="hold", window_seconds=WINDOW)
    )
    state = engine.start()
    assert state.phase == "paused" and state.cause == "hold" and "bj-edge-01" in state.reason
    assert all(pin["canary"] is None for pin in asr_images(box).values())  # nothing was deployed
    client.control({"action": "node_up", "node": "bj-edge-01"})
    wait_all_up(box)
    assert engine.resume().phase == "promoted"


def test_inconclusive_pauses_for_promote_then_abort_restores(sandbox_factory: Factory) -> None:
    box = sandbox_factory()
    ready(box)
    # a KPI both tracks miss (asr p95 is about 290 ms): the canary is not to blame, but cannot be passed
    strict = Thresholds(error_ratio=0.001, p95_seconds=0.1, inference_error_ratio=0.001)
    engine, _ = make_engine(
        box, settings=Settings(interval_seconds=1.0, checks=1, window_seconds=WINDOW), thresholds=strict
    )
    state = engine.start()
    assert state.phase == "paused" and state.cause == "inconclusive" and state.step == 0
    assert "stable breaches the KPI too" in state.reason
    state = engine.promote()
    assert state.steps[0].status == "passed"
    assert state.phase == "paused" and state.step == 1
    assert any(pin["canary"] == NEW_ASR for pin in asr_images(box).values())
    state = engine.abort()
    assert state.phase == "aborted" and state.cause == "operator"
    assert all(pin == {"stable": OLD_ASR, "canary": None} for pin in asr_images(box).values())


def test_full_promote_skips_the_remaining_steps(sandbox_factory: Factory) -> None:
    box = sandbox_factory()
    ready(box)
    strict = Thresholds(error_ratio=0.001, p95_seconds=0.1, inference_error_ratio=0.001)
    settings = Settings(interval_seconds=1.0, checks=1, window_seconds=WINDOW)
    engine, events = make_engine(box, settings=settings, thresholds=strict)
    assert engine.start().cause == "inconclusive"
    state = engine.promote(full=True)
    assert state.phase == "promoted" and [s.status for s in state.steps] == ["passed"] * 4
    assert len([k for k, _ in events if k == "applied"]) == 1  # no further canary step was deployed
    assert all(pin == {"stable": NEW_ASR, "canary": None} for pin in asr_images(box).values())


class _Killed(BaseException):
    """Stands for kill -9: not an error the engine handles, it just stops mid-deploy."""


def _engine_whose_third_deploy_fails(box: SandboxInfo, failure: BaseException) -> RolloutEngine:
    """Step 1 sends one deploy action, step 2 two: the third (bj-edge-03's canary) raises `failure`."""
    client = SimulatorClient(box.simulator_url)
    calls: list[dict[str, Any]] = []

    def control(action: dict[str, Any]) -> dict[str, Any]:
        calls.append(action)
        if len(calls) == 3:
            raise failure
        return client.control(action)

    engine, _ = make_engine(box, settings=Settings(interval_seconds=1.0, checks=1, window_seconds=WINDOW))
    engine.deployer = SimulatorDeployer(control, client.state, box.simulator_url)
    return engine


def test_crash_in_the_middle_of_a_deploy_is_reapplied_on_resume(sandbox_factory: Factory) -> None:
    box = sandbox_factory()
    ready(box)
    engine = _engine_whose_third_deploy_fails(box, _Killed())
    with pytest.raises(_Killed):
        engine.start()
    store = StateStore(box.state_dir)
    saved = store.load(engine.state.id)
    assert saved.pending is not None and saved.pending["purpose"] == "step" and saved.step == 1
    half = asr_images(box)
    assert (half["bj-edge-02"]["canary"], half["bj-edge-03"]["canary"]) == (NEW_ASR, None)
    client = SimulatorClient(box.simulator_url)
    real = SimulatorDeployer(client.control, client.state, box.simulator_url)
    state = RolloutEngine(store, saved, real, engine.analyzer).resume()
    assert state.phase == "promoted", state.reason
    assert all(pin == {"stable": NEW_ASR, "canary": None} for pin in asr_images(box).values())


def test_failed_deploy_rolls_back_every_node_it_may_have_reached(sandbox_factory: Factory) -> None:
    box = sandbox_factory()
    ready(box)
    engine = _engine_whose_third_deploy_fails(box, ExternalToolError("connection reset by peer"))
    state = engine.start()
    assert (state.phase, state.cause) == ("rolled_back", "deploy_failed")
    assert "connection reset by peer" in state.reason
    assert all(pin == {"stable": OLD_ASR, "canary": None} for pin in asr_images(box).values())
