"""Canary rollouts judged by a real Prometheus fed by the simulator (1 s scrapes, 1 s analysis intervals).

Only the two outcomes that need real PromQL over real scrapes live here; every transition, crash point and
metric outcome is covered with fakes in test_transitions.py and test_safety.py.
"""

from __future__ import annotations

import pytest

from tests.fixtures.rollout_sandbox import NEW_ASR, OLD_ASR, asr_images, make_engine
from xzctl.rollout.state import StateStore
from xzctl.sandbox import SandboxInfo, SimulatorClient

pytestmark = pytest.mark.live


def test_healthy_canary_goes_through_every_step(rollout_box: SandboxInfo) -> None:
    box = rollout_box
    engine, events = make_engine(box)
    state = engine.start()
    assert state.phase == "promoted", state.reason
    assert [s.status for s in state.steps] == ["passed"] * 4
    assert [k for k, _ in events if k == "applied"] == ["applied"] * 4
    assert sum(m.result == "success" for m in state.analysis) == 8
    assert all(m.window_seconds <= 4.0 for m in state.analysis)
    assert all(pin == {"stable": NEW_ASR, "canary": None} for pin in asr_images(box).values())
    assert StateStore(box.state_dir).holder("bj-edge-01") is None  # locks released


def test_regressed_canary_is_rolled_back_within_two_intervals(rollout_box: SandboxInfo) -> None:
    box = rollout_box
    SimulatorClient(box.simulator_url).control({"action": "image_profile", "image": NEW_ASR, "error_rate": 0.05})
    engine, _ = make_engine(box)
    state = engine.start()
    assert state.phase == "rolled_back" and state.cause == "analysis_failed"
    assert "error ratio canary" in state.reason
    assert len(state.analysis) <= 2  # the failure came at the first or second measurement
    assert state.analysis[-1].result == "failure" and state.analysis[-1].step == 0
    assert [s.status for s in state.steps][:2] == ["failed", "pending"]  # never "analyzing" once rolled back
    assert all(pin == {"stable": OLD_ASR, "canary": None} for pin in asr_images(box).values())
