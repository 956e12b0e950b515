"""Each scenario control of the simulator, seen through a real Prometheus scraping it."""

from __future__ import annotations

import pytest

from tests.fixtures.sandbox import equals, wait_for_query
from xzctl.errors import BadInputError
from xzctl.metrics import queries as q
from xzctl.prom.client import Sample
from xzctl.sandbox import SandboxInfo, SimulatorClient

pytestmark = pytest.mark.live
NODE = "bj-edge-01"
CANARY = "registry.xiaozhi.example/inference/asr:1.1.0-rc1"


def _value(samples: list[Sample], **labels: str) -> float:
    matching = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, f"{labels} in {samples}"
    return matching[0]


@pytest.fixture
def box(sandbox: SandboxInfo) -> SandboxInfo:
    """The session sandbox, reset to the spec with every node scraped since."""
    return sandbox


def test_node_down_moves_its_sessions_to_the_region_and_node_up_brings_them_back(box: SandboxInfo) -> None:
    sim = SimulatorClient(box.simulator_url)
    sim.control({"action": "set_devices", "region": "beijing", "utilization": 0.5})
    wait_for_query(box.prometheus_url, q.active_devices(filters={"region": "beijing"}), lambda s: len(s) == 3, 10)
    moving = sim.control({"action": "node_down", "node": NODE, "reconnect_seconds": [0.5, 2]})["moving"]
    assert moving == 75
    wait_for_query(box.prometheus_url, q.node_up(filters={"node": NODE}), equals(0), 15)
    # the sandbox's Prometheus runs the fleet's alert rules: EdgeNodeDown is pending (its `for` is 1m)
    wait_for_query(box.prometheus_url, f'ALERTS{{alertname="EdgeNodeDown",node="{NODE}"}}', bool, 15)
    # 75 sessions fit in the two other Beijing nodes (75 + 38 each is under 150): none leave the region.
    region = wait_for_query(
        box.prometheus_url,
        q.active_devices(by=("region",), filters={"region": "beijing"}),
        lambda s: bool(s) and s[0].value == 225,
        20,
    )
    assert region[0].value == 225
    nodes = sim.state()["nodes"]
    assert sorted([nodes["bj-edge-02"]["devices"], nodes["bj-edge-03"]["devices"]]) == [112, 113]
    sim.control({"action": "node_up", "node": NODE})
    wait_for_query(box.prometheus_url, q.active_devices(filters={"node": NODE}), equals(75), 15)
    wait_for_query(box.prometheus_url, q.active_devices(filters={"node": "bj-edge-02"}), equals(75), 15)


def test_overload_past_capacity_builds_a_queue_and_latency(box: SandboxInfo) -> None:
    sim = SimulatorClient(box.simulator_url)
    sim.control({"action": "set_devices", "node": NODE, "devices": 400})
    devices = wait_for_query(box.prometheus_url, q.active_devices(filters={"node": NODE}), equals(400), 15)
    assert devices[0].value == 400
    overload = wait_for_query(box.prometheus_url, f'ALERTS{{alertname="DeviceOverload",node="{NODE}"}}', bool, 15)
    assert overload[0].labels["alertstate"] == "pending" and overload[0].labels["severity"] == "warning"
    queue = wait_for_query(
        box.prometheus_url, q.queue_size("llm", filters={"node": NODE}), lambda s: bool(s) and s[0].value > 20, 20
    )
    assert queue[0].value > 20
    p95 = wait_for_query(
        box.prometheus_url,
        q.p95_latency("llm", window="1m", by=("node",), filters={"node": ["bj-edge-01", "bj-edge-02"]}),
        lambda s: len(s) == 2 and _value(s, node=NODE) > 2 * _value(s, node="bj-edge-02"),
        20,
    )
    assert _value(p95, node=NODE) > 2.0
    pair = {"node": [NODE, "bj-edge-02"]}

    def busier(s: list[Sample]) -> bool:
        return len(s) == 2 and _value(s, node=NODE) > _value(s, node="bj-edge-02") > 0

    # the CPU rate's 30 s window may still reach back to before the overload
    for busy in (q.cpu_utilization(window="30s", filters=pair), q.gpu_utilization(filters=pair)):
        assert busier(wait_for_query(box.prometheus_url, busy, busier, 40))


def test_canary_image_with_worse_latency_and_errors_shows_on_its_track(box: SandboxInfo) -> None:
    sim = SimulatorClient(box.simulator_url)
    sim.control({"action": "image_profile", "image": CANARY, "latency_factor": 3.0, "error_rate": 0.2})
    sim.control({"action": "deploy", "node": NODE, "service": "asr", "track": "canary", "image": CANARY})
    assert sim.state()["nodes"][NODE]["images"]["asr"] == {
        "stable": "registry.xiaozhi.example/inference/asr:2.2.0",
        "canary": CANARY,
    }
    ratio = wait_for_query(
        box.prometheus_url,
        q.inference_error_ratio("asr", window="30s", filters={"node": NODE}),
        lambda s: len(s) == 2 and _value(s, track="canary") > 0.1,
        30,
    )
    assert _value(ratio, track="stable") < 0.01
    p95 = wait_for_query(
        box.prometheus_url, q.p95_latency("asr", window="30s", filters={"node": NODE}), lambda s: len(s) == 2, 10
    )
    assert _value(p95, track="canary") > 2 * _value(p95, track="stable")
    images = wait_for_query(
        box.prometheus_url, q.running_images(filters={"node": NODE, "service": "asr"}), lambda s: len(s) == 2, 10
    )
    assert {s.labels["image"] for s in images} == {CANARY, "registry.xiaozhi.example/inference/asr:2.2.0"}
    sim.control({"action": "deploy", "node": NODE, "service": "asr", "track": "canary", "image": None})
    assert sim.state()["nodes"][NODE]["images"]["asr"]["canary"] is None


def test_metrics_gap_fails_the_scrape_while_the_node_keeps_serving(box: SandboxInfo) -> None:
    sim = SimulatorClient(box.simulator_url)
    sim.control({"action": "metrics_gap", "node": NODE, "seconds": 4})
    wait_for_query(box.prometheus_url, q.node_up(filters={"node": NODE}), equals(0), 10)
    assert sim.state()["nodes"][NODE]["up"] is True and sim.state()["nodes"][NODE]["devices"] > 0
    wait_for_query(box.prometheus_url, q.node_up(filters={"node": NODE}), equals(1), 15)


def test_stale_exporter_serves_frozen_counters(box: SandboxInfo) -> None:
    sim = SimulatorClient(box.simulator_url)
    moving = f'increase(xiaozhi_sessions_opened_total{{node="{NODE}"}}[5s])'
    wait_for_query(box.prometheus_url, moving, lambda s: bool(s) and s[0].value > 0, 15)
    sim.control({"action": "stale", "node": NODE, "enabled": True})
    assert sim.node_metrics(NODE) == sim.node_metrics(NODE)
    frozen = wait_for_query(box.prometheus_url, moving, lambda s: bool(s) and s[0].value == 0, 15)
    assert frozen[0].value == 0
    up = wait_for_query(box.prometheus_url, q.node_up(filters={"node": NODE}), bool, 5)
    assert up[0].value == 1  # a stale exporter still answers: only the frozen values give it away
    sim.control({"action": "stale", "node": NODE, "enabled": False})
    wait_for_query(box.prometheus_url, moving, lambda s: bool(s) and s[0].value > 0, 15)


def test_reset_returns_to_the_spec_and_bad_actions_are_refused(box: SandboxInfo) -> None:
    sim = SimulatorClient(box.simulator_url)
    sim.control({"action": "set_devices", "node": NODE, "devices": 7})
    wait_for_query(box.prometheus_url, q.active_devices(filters={"node": NODE}), equals(7), 10)
    sim.control({"action": "reset"})
    wait_for_query(
        box.prometheus_url, q.active_devices(filters={"node": NODE}), lambda s: bool(s) and s[0].value > 20, 10
    )
    for bad, message in (
        ({"action": "node_down", "node": "xx-edge-99"}, "unknown edge node"),
        ({"action": "set_devices", "node": NODE, "devices": -1}, "devices"),
        ({"action": "deploy", "node": NODE, "service": "asr", "track": "blue", "image": CANARY}, "track"),
        ({"action": "explode"}, "unknown action"),
    ):
        with pytest.raises(BadInputError, match=message):
            sim.control(bad)
