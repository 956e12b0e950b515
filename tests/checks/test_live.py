"""Capacity, failover, cost and the drill against the real Prometheus scraping the fleet simulator.

The scenarios pin the active devices of every node with the simulator's `set_devices` control, so the
expected verdicts follow by hand from the bundled example: 7 edge nodes (beijing 3, shanghai 2,
guangzhou 2), max_devices 150 each. At 95 % every node carries round(0.95 x 150) = 142 devices.
With the example's KPIs the edge LLM is the bottleneck: 1 replica x batch 8 / 1.1 s = 7.3 requests/s
against 135 x 6 turns / 165 s = 4.9 turns/s at 90 %, 67 % busy, and its p95 nears the 2 s KPI. The
`relaxed` fleet (latency KPIs x10) takes latency out of the way: there CPU (~50 % of 80 %) and GPU
(~66 % of 90 %) leave room past 150 devices, so max_devices is the first limit, 8 devices of headroom.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.sandbox import HISTORY_GROUP, HISTORY_TIMEOUT
from tests.fixtures.scenarios import ALL_95, WINDOW_SECONDS, devices_seen, known_snapshot, pin, relaxed_fleet
from xzctl.checks import SnapshotOptions, Status, capacity_report, check_all, drill, failover_check
from xzctl.prom import PrometheusClient
from xzctl.sandbox import SandboxInfo, SimulatorClient
from xzctl.spec import Fleet

pytestmark = pytest.mark.live

OPTIONS = SnapshotOptions(window=f"{WINDOW_SECONDS}s", history_seconds=600, scrape_interval_seconds=1)


def _control(sim: SimulatorClient, action: dict[str, Any]) -> None:
    sim.control(action)


@pytest.fixture
def relaxed(tmp_path: Path) -> tuple[Path, Fleet]:
    return relaxed_fleet(tmp_path)


def test_capacity_at_90_percent_names_the_edge_llm_latency_as_first_limit(
    sandbox: SandboxInfo, example_fleet: Fleet
) -> None:
    # At 90 % (135 devices) the edge LLM is 67 % busy: its p95 is under 2 s, but the latency model puts
    # the 2 s KPI before 150 devices.
    box = pin(sandbox, {"beijing": 0.9, "shanghai": 0.9, "guangzhou": 0.9})
    with PrometheusClient(box.prometheus_url) as client:
        report = capacity_report(known_snapshot(client, example_fleet, OPTIONS))
    for node in report.nodes.values():
        assert node.devices == 135
        assert node.limit == "latency:llm", node.to_dict()
        assert node.headroom is not None and 0 < node.headroom < 15, node.to_dict()  # hit before max_devices
        assert 1.0 < node.latency_p95["llm"] < 2.0
    assert report.status in (Status.OK, Status.WARN)


def test_capacity_at_95_percent_names_max_devices_as_first_limit(
    sandbox: SandboxInfo, relaxed: tuple[Path, Fleet]
) -> None:
    _, fleet = relaxed
    box = pin(sandbox, ALL_95)
    with PrometheusClient(box.prometheus_url) as client:
        report = capacity_report(known_snapshot(client, fleet, OPTIONS))
    assert report.queries == 12 * len(fleet.regions)  # per region, whatever its size
    for node in report.nodes.values():
        assert (node.devices, node.headroom, node.limit) == (142, 8, "max_devices"), node.to_dict()
        # 8 devices is under 10 % of 150: a warning, never a failure.
        assert node.status is Status.WARN
        assert any(r.startswith("headroom 8 devices") for r in node.reasons)
        assert node.cpu is not None and node.gpu is not None
        assert 0 < node.cpu < 0.8 and 0 < node.gpu < 0.9
        assert set(node.latency_p95) == {"vad", "asr", "llm", "tts", "end_to_end"}
    beijing = report.regions["beijing"]
    assert (beijing.devices, beijing.max_devices, beijing.headroom) == (426, 450, 24)
    assert (report.fleet.devices, report.fleet.max_devices, report.fleet.headroom) == (994, 1050, 56)
    assert report.status is Status.WARN


def test_failover_at_95_percent_drops_the_devices_no_node_can_take(
    sandbox: SandboxInfo, relaxed: tuple[Path, Fleet]
) -> None:
    _, fleet = relaxed
    box = pin(sandbox, ALL_95)
    with PrometheusClient(box.prometheus_url) as client:
        snapshot = known_snapshot(client, fleet, OPTIONS)
    report = failover_check(fleet, capacity_report(snapshot), snapshot)
    by = {(f.kind, f.lost): f for f in report.failures}
    assert len(report.failures) == 7 + 3
    # bj-edge-01's 142 devices: bj-edge-02 and -03 take 8 each (to 150), the four other nodes 8 each
    # (cross_region_failover is on): 48 placed, 94 without service.
    lost = by[("node", "bj-edge-01")]
    assert (lost.placed_same_region, lost.placed_other_regions, lost.unserved) == (16, 32, 94)
    assert lost.placed_on == {
        n: 8 for n in ("bj-edge-02", "bj-edge-03", "sh-edge-01", "sh-edge-02", "gz-edge-01", "gz-edge-02")
    }
    assert lost.status is Status.CRIT and lost.outcome == "drops devices"
    # Losing beijing: 426 devices, the 4 other nodes take 8 each: 394 without service.
    region = by[("region", "beijing")]
    assert (region.placed_other_regions, region.unserved) == (32, 394)
    assert report.status is Status.CRIT


def test_half_loaded_region_survives_losing_a_node(sandbox: SandboxInfo, relaxed: tuple[Path, Fleet]) -> None:
    # beijing at 50 %: 75 devices per node; bj-edge-01's 75 fit on bj-edge-02/03 (75 free each).
    _, fleet = relaxed
    box = pin(sandbox, {"beijing": 0.5, "shanghai": 0.95, "guangzhou": 0.95})
    with PrometheusClient(box.prometheus_url) as client:
        snapshot = known_snapshot(client, fleet, OPTIONS)
    report = failover_check(fleet, capacity_report(snapshot), snapshot)
    lost = next(f for f in report.failures if f.lost == "bj-edge-01")
    assert lost.status is Status.OK and lost.outcome == "survives"
    assert (lost.placed_same_region, lost.placed_other_regions, lost.unserved) == (75, 0, 0)
    assert set(lost.placed_on) == {"bj-edge-02", "bj-edge-03"}
    assert all(30 <= n <= 45 for n in lost.placed_on.values())  # near-equal nodes share the load


def test_cost_from_live_devices(sandbox: SandboxInfo, example_fleet: Fleet) -> None:
    box = pin(sandbox, ALL_95)
    with PrometheusClient(box.prometheus_url) as client:
        result = check_all(client, example_fleet, OPTIONS)
    cost = result.cost
    # capex 1,610,000 / 3 years / 12 + opex 1,550,000 / 12 = 44,722.22 + 129,166.67 = 173,888.89 a month.
    assert cost.cost_month == pytest.approx(173_888.89, abs=0.01)
    assert cost.active_devices == 994, devices_seen(box)
    assert cost.cost_per_device_month == pytest.approx(173_888.89 / 994, abs=0.01)  # 174.94 < 200
    assert cost.run_rate_revenue_year == 994 * 3000
    # payback: 1,610,000 / (2,982,000 - 1,550,000) = 1.124 years < 2.
    assert cost.payback_years == pytest.approx(1_610_000 / 1_432_000, rel=1e-9)
    # Idle: unused device slots, as the plan counts them: 1 - 994/1050.
    assert cost.idle_share == pytest.approx(56 / 1050)
    assert cost.status is Status.OK
    assert result.to_dict()["checks"]["cost"]["status"] == "ok"


def test_drill_times_the_failover_against_the_kpi(sandbox: SandboxInfo, example_fleet: Fleet) -> None:
    box = pin(sandbox, {"beijing": 0.5, "shanghai": 0.5, "guangzhou": 0.5})
    sim = SimulatorClient(box.simulator_url)
    with PrometheusClient(box.prometheus_url) as client:
        snapshot = known_snapshot(client, example_fleet, OPTIONS)
        capacity = capacity_report(snapshot)
        failover = failover_check(example_fleet, capacity, snapshot)
        result = drill(
            client,
            example_fleet,
            capacity,
            failover,
            "bj-edge-01",
            stop=lambda: _control(sim, {"action": "node_down", "node": "bj-edge-01", "reconnect_seconds": [1, 3]}),
            restore=lambda: _control(sim, {"action": "node_up", "node": "bj-edge-01"}),
            timeout_seconds=40,
            poll_seconds=0.25,
        )
    assert result.lost_devices == 75
    # Room for all of them in beijing: back means within 1 % of the 525 devices before (5 devices).
    assert (result.devices_before, result.expected_back) == (525, 520)
    assert result.status is Status.OK, result.reason
    assert result.seconds is not None and 1 <= result.seconds <= 30
    assert result.devices_back is not None and result.devices_back >= result.expected_back
    assert sim.state()["nodes"]["bj-edge-01"]["up"] is True  # restored after the drill


@pytest.mark.timeout(HISTORY_TIMEOUT)
@pytest.mark.xdist_group(HISTORY_GROUP)
def test_forecast_reads_days_of_backfilled_history(history_sandbox: SandboxInfo, example_fleet: Fleet) -> None:
    # Days of backfilled history (all four read here: a trend needs three whole days of peaks); every node up.
    box = pin(history_sandbox, {"beijing": 0.6, "shanghai": 0.6, "guangzhou": 0.6})
    options = SnapshotOptions(window="5s", history_seconds=4 * 86400, history_points=192, scrape_interval_seconds=1)
    with PrometheusClient(box.prometheus_url) as client:
        snapshot = known_snapshot(client, example_fleet, options)
        report = capacity_report(snapshot)
    history = snapshot.nodes["bj-edge-01"].history
    # 192 points of half an hour over four days, from the backfill (a few may be missing at the edges).
    assert len(history) >= 180 and history[-1][0] - history[0][0] >= 95 * 3600
    for node in report.nodes.values():
        assert node.growth_per_day is not None, node.to_dict()
        # A growing trend gives the days until the first limit; a flat or falling one (or a full node) gives none.
        growing = node.growth_per_day > 0 and node.headroom is not None and node.headroom > 0
        assert (node.days_until_full is not None) == growing, node.to_dict()
    assert report.fleet.growth_per_day is not None
