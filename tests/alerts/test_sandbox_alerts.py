"""The generated rules, evaluated by the sandbox's real Prometheus on simulator data: quiet when the fleet
is healthy, pending as soon as a bad canary ships."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.fixtures.sandbox import wait_for_query, wait_scraped_since
from xzctl.alerts.rules import P95_BY_TRACK
from xzctl.sandbox import SandboxInfo, SimulatorClient

pytestmark = pytest.mark.live
NODE = "sh-edge-02"
BAD = "registry.xiaozhi.example/inference/tts:2.0.0-rc1"


def test_healthy_fleet_raises_no_alert_and_a_bad_canary_does(sandbox_factory: Callable[..., SandboxInfo]) -> None:
    # A sandbox of its own: the shared one carries the burn-rate windows of earlier overload scenarios.
    box = sandbox_factory(seed=11)
    # recording rules have data once two scrapes of every node are in
    wait_for_query(box.prometheus_url, f"count({P95_BY_TRACK})", lambda s: bool(s) and s[0].value >= 7 * 5, 30)
    # A few more evaluations on healthy data: every node scraped 3 s after the rules first had data.
    wait_scraped_since(box, time.time() + 3)
    quiet = wait_for_query(box.prometheus_url, "max_over_time((count(ALERTS) or vector(0))[4s:1s])", bool, 10)
    assert quiet[0].value == 0, "a healthy simulated fleet must not raise alerts"

    sim = SimulatorClient(box.simulator_url)
    sim.control({"action": "image_profile", "image": BAD, "latency_factor": 4.0, "error_rate": 0.3})
    sim.control({"action": "deploy", "node": NODE, "service": "tts", "track": "canary", "image": BAD})
    alerts = wait_for_query(
        box.prometheus_url,
        f'ALERTS{{node="{NODE}",service="tts"}}',
        lambda s: {a.labels["alertname"] for a in s} >= {"CanaryDegraded", "ModelInferenceFailure"},
        30,
    )
    assert {a.labels["node"] for a in alerts} == {NODE}
