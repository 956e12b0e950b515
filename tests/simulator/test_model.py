"""The simulator's model on a fake clock: determinism, sessions, load, failover, exposition format."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.manifests import SITE_COORDINATOR, coordinator_variant
from xzctl.errors import BadInputError
from xzctl.metrics import contract as c
from xzctl.simulator.exposition import node_families, render_text
from xzctl.simulator.load import NodeState
from xzctl.simulator.model import IDLE_CLOSE_SECONDS, SESSION_SECONDS, TRACK_SALT, FleetModel, diurnal_activity
from xzctl.simulator.server import Simulator
from xzctl.spec import Fleet

T0 = 1_790_000_000.0  # a fixed instant: 2026-09-21 14:13 UTC


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _run(fleet: Fleet, seed: int, minutes: int = 5) -> str:
    clock = Clock()
    sim = Simulator(fleet, seed=seed, clock=clock)
    for _ in range(minutes * 6):
        clock.t += 10
        status, body = sim.scrape("bj-edge-01")
    assert status == 200
    return body


def test_same_seed_same_metrics_other_seed_other_metrics(example_fleet: Fleet) -> None:
    assert _run(example_fleet, 1) == _run(example_fleet, 1)
    assert _run(example_fleet, 1) != _run(example_fleet, 2)


@pytest.mark.live
def test_exposition_uses_only_contract_names_and_passes_promtool(example_fleet: Fleet) -> None:
    body = _run(example_fleet, 0)
    names = {re.split(r"[{ ]", line)[0] for line in body.splitlines() if not line.startswith("#")}
    allowed = {m.name for m in c.ALL} | {f"{c.REQUEST_DURATION.name}_{suffix}" for suffix in ("bucket", "sum", "count")}
    assert names <= allowed
    # Replicas are exposed while the simulator's autoscaler runs (tests/simulator/test_replicas.py).
    expected = {m.name for m in c.ALL if m.type is not c.MetricType.HISTOGRAM} - {c.SERVICE_REPLICAS.name}
    assert names >= expected - c.REAL_SERVICES_ONLY
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False)
    # The only lint findings are the camelCase names node-exporter and DCGM chose, which the contract keeps.
    findings = [line for line in (lint.stdout + lint.stderr).splitlines() if line.strip()]
    assert findings and all(line.startswith(("DCGM_FI_DEV_", "node_memory_Mem")) for line in findings), findings


def test_sessions_follow_the_diurnal_curve_and_the_idle_close(example_fleet: Fleet) -> None:
    assert SESSION_SECONDS == 45 + IDLE_CLOSE_SECONDS
    assert diurnal_activity(20 * 3600) == pytest.approx(0.25)  # 04:00 China time
    assert diurnal_activity(8 * 3600) == pytest.approx(0.90)  # 16:00 China time
    model = FleetModel(example_fleet, seed=0, start=T0)
    node = model.nodes["bj-edge-01"]
    night = T0 - (T0 % 86400) + 20 * 3600
    day = night + 12 * 3600
    assert 0.2 * 145 < model.active_sessions(node, night) < 0.3 * 145
    assert 0.85 * 145 < model.active_sessions(node, day) < 0.95 * 145


def test_latency_grows_with_load_and_a_backlog_builds_past_capacity(example_fleet: Fleet) -> None:
    model = FleetModel(example_fleet, seed=0, start=T0)
    light, heavy = model.nodes["bj-edge-01"], model.nodes["bj-edge-02"]
    light.pinned, heavy.pinned = 50, 400
    model.advance(T0 + 120)
    assert heavy.queue["llm"] > 50 > light.queue["llm"]
    assert heavy.cpu_share > light.cpu_share and heavy.gpu_share > light.gpu_share

    def mean(node: NodeState) -> float:
        s = node.series[("llm", "stable")]
        return s.total / s.count

    assert mean(heavy) > 3 * mean(light)
    assert heavy.series[("llm", "stable")].errors > light.series[("llm", "stable")].errors


def test_failover_is_capped_by_max_devices_and_spills_to_other_regions(example_fleet: Fleet) -> None:
    model = FleetModel(example_fleet, seed=5, start=T0)
    model.control({"action": "set_devices", "region": "beijing", "utilization": 0.9}, T0)
    result = model.control({"action": "node_down", "node": "bj-edge-01", "reconnect_seconds": [1, 3]}, T0)
    assert result["moving"] == 135
    model.advance(T0 + 2)
    assert 0 < sum(a.count for a in model.arrivals) < 135  # reconnects are spread over the delay window
    model.advance(T0 + 4)
    assert model.arrivals == []
    beijing = [model.nodes[n] for n in ("bj-edge-02", "bj-edge-03")]
    assert [n.active for n in beijing] == [150, 150]  # filled to max_devices, not past it
    elsewhere = sum(n.moved_in for n in model.nodes.values() if n.region != "beijing")
    assert elsewhere == 135 - 30
    model.control({"action": "node_up", "node": "bj-edge-01"}, T0 + 5)
    assert all(n.moved_in == 0 for n in model.nodes.values())


def test_counters_never_go_backwards_across_controls(example_fleet: Fleet) -> None:
    clock = Clock()
    sim = Simulator(example_fleet, seed=0, clock=clock)
    node = sim.model.nodes["sh-edge-01"]
    seen: list[float] = []
    for action in (
        {"action": "set_devices", "node": "sh-edge-01", "devices": 300},
        {"action": "node_down", "node": "sh-edge-01"},
        {"action": "node_up", "node": "sh-edge-01"},
        {"action": "reset"},
    ):
        clock.t += 30
        sim.scrape("sh-edge-01")
        seen.append(node.series[("end_to_end", "stable")].count)
        sim.control(action)
    assert seen == sorted(seen)


def test_a_1000_node_fleet_with_150k_devices_renders(big_fleet: Fleet) -> None:
    model = FleetModel(big_fleet, seed=0, start=T0)
    model.advance(T0 + 10)
    assert len(model.nodes) == 1000
    assert sum(n.spec.devices for n in model.nodes.values()) > 140_000
    body = render_text(node_families(model, model.nodes[big_fleet.edge_nodes()[-1].id]))
    assert "xiaozhi_active_devices " in body


@pytest.fixture(scope="module")
def big_fleet() -> Fleet:
    from xzctl.spec.generate import generate_fleet_document
    from xzctl.spec.load import build_fleet

    return build_fleet(generate_fleet_document(1000, devices_per_node=150), {}, "generated")


def test_a_second_failure_moves_the_failed_over_devices_on_without_negative_counts(example_fleet: Fleet) -> None:
    model = FleetModel(example_fleet, seed=1, start=T0)
    model.control({"action": "set_devices", "region": "shanghai", "utilization": 0.4}, T0)
    model.control({"action": "node_down", "node": "sh-edge-01", "reconnect_seconds": [0, 0]}, T0)
    model.advance(T0 + 1)
    assert model.nodes["sh-edge-02"].active == 120  # its own 60 and sh-edge-01's 60
    model.control({"action": "node_down", "node": "sh-edge-02", "reconnect_seconds": [0, 0]}, T0 + 2)
    model.advance(T0 + 3)
    model.control({"action": "node_up", "node": "sh-edge-01"}, T0 + 4)
    assert all(n.moved_in >= 0 for n in model.nodes.values())
    assert sum(n.moved_in for n in model.nodes.values() if n.region != "shanghai") == 120


def test_each_session_lasts_a_conversation_plus_the_idle_close(example_fleet: Fleet) -> None:
    model = FleetModel(example_fleet, seed=0, start=T0)
    node = model.nodes["gz-edge-01"]
    node.pinned = 165
    model.advance(T0 + 600)
    # Little's law: 165 open sessions of 165 s each means one new session per second
    assert node.sessions_opened == pytest.approx(600, rel=1e-9)
    turns = node.series[("end_to_end", "stable")].count
    assert 0.95 * 600 * 6 <= turns <= 1.05 * 600 * 6  # six turns per conversation, within the load noise


def test_a_measured_class_draws_end_to_end_latency_from_its_curve_with_noise_per_track(
    tmp_path: Path, example_fleet: Fleet
) -> None:
    """edge-standard measured (a fake curve: median first audio 1.0 s at 120 and 130 devices): the simulator's
    end-to-end median is the curve's, not the stage model's, and a canary never equals its stable by construction."""
    from tests.fixtures.measured import measured_example
    from xzctl.simulator.load import E2E_SIGMA

    def e2e_median(fleet: Fleet) -> tuple[FleetModel, NodeState, float]:
        model = FleetModel(fleet, seed=3, start=T0)
        node = model.nodes["bj-edge-01"]
        node.pinned = 125
        model.advance(T0 + 600)
        stable = node.series[("end_to_end", "stable")]
        return model, node, stable.total / stable.count / math.exp(E2E_SIGMA**2 / 2)

    model, node, median = e2e_median(measured_example(tmp_path, 120).fleet)
    assert 0.95 <= median <= 1.05  # the curve's 1.0 s, within the noise
    assert e2e_median(example_fleet)[2] > 1.1  # the stage model's guess, without a profile, is another figure
    noises = {model._noise(node, T0 + 10 * i, 10 + TRACK_SALT[t]) for i in range(30) for t in TRACK_SALT}
    assert len(noises) == 60  # stable and canary draw their own noise in every window


@pytest.mark.parametrize("coordinator", [None, SITE_COORDINATOR])
def test_end_to_end_series_carry_the_image_of_what_measures_the_turns(
    example_fleet: Fleet, tmp_path: Path, coordinator: str | None
) -> None:
    fleet = example_fleet
    if coordinator:
        fleet = coordinator_variant(tmp_path, coordinator)
    body = _run(fleet, seed=7, minutes=1)
    images = set(
        re.findall(
            r'^xiaozhi_request_duration_seconds_count\{[^}]*service="end_to_end"[^}]*image="([^"]+)"', body, re.M
        )
    )
    # without a coordinator the turns go through the xiaozhi server, which labels them
    assert images == {coordinator or fleet.node("bj-edge-01").services.xiaozhi_server.image}
    assert ('service="coordinator"' in body) == bool(coordinator)


def test_a_pinned_node_follows_the_load_again_when_unpinned(example_fleet: Fleet) -> None:
    model = FleetModel(example_fleet, seed=1, start=T0)
    model.control({"action": "set_devices", "node": "bj-edge-01", "devices": 0}, T0)
    assert model.state(T0)["nodes"]["bj-edge-01"]["pinned"] == 0
    model.control({"action": "set_devices", "node": "bj-edge-01", "devices": None}, T0)
    assert model.state(T0)["nodes"]["bj-edge-01"]["pinned"] is None
    with pytest.raises(BadInputError, match="or null"):
        model.control({"action": "set_devices", "node": "bj-edge-01", "devices": -1}, T0)
