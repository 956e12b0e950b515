"""The headroom, forecast and cost models on hand-made snapshots of the bundled example (no Prometheus)."""

from __future__ import annotations

import math

import pytest

from tests.fixtures.handmade import LATENCY, metrics, snapshot
from xzctl.checks import CapacityThresholds, Status, capacity_report, cost_check
from xzctl.checks.capacity import fit_growth
from xzctl.checks.snapshot import NodeMetrics
from xzctl.plan import build_plan
from xzctl.plan.economics import IDLE_DEFINITION
from xzctl.spec import Fleet


def test_headroom_is_the_first_limit_of_the_linear_model(example_fleet: Fleet) -> None:
    node = capacity_report(snapshot(example_fleet)).nodes["bj-edge-01"]
    at_cap = {lim.name: lim.devices_at_cap for lim in node.limits}
    # 100 devices: CPU 40 % of the 80 % cap -> 200; memory 50 % of 85 % -> 170; GPU 60 % of 90 % -> 150.
    # Latency with rho = 0.6 (GPU, the busiest): vad base = 30 ms x 0.4 = 12 ms reaches the 50 ms KPI at
    # rho* = 1 - 12/50 = 0.76 -> 100 x 0.76 / 0.6 = 126.7; the others (0.8 -> 133.3) later.
    assert at_cap == {
        "max_devices": 150,
        "cpu": 200,
        "memory": 170,
        "gpu": 150,
        "latency:vad": 126,
        "latency:asr": 133,
        "latency:llm": 133,
        "latency:tts": 133,
        "latency:end_to_end": 133,
    }
    assert (node.headroom, node.limit, node.status, node.reasons) == (26, "latency:vad", Status.OK, [])


def test_over_a_kpi_cap_is_crit_with_negative_headroom(example_fleet: Fleet) -> None:
    hot = metrics("bj-edge-02", "beijing", cpu=0.85, error_ratio=0.002)
    report = capacity_report(snapshot(example_fleet, bj_edge_02=hot))
    node = report.nodes["bj-edge-02"]
    # CPU 85 % > 80 %: the cap is at 100 x 0.8 / 0.85 = 94 devices, 6 fewer than now.
    assert (node.headroom, node.limit) == (-6, "cpu")
    assert node.status is Status.CRIT
    assert node.reasons == ["cpu 85.0% > KPI 80%", "error rate 0.200% > KPI 0.1%"]
    assert report.regions["beijing"].status is Status.CRIT
    assert report.regions["beijing"].reasons == ["crit: bj-edge-02"]  # the why is on the node's row, said once
    assert report.regions["shanghai"].status is Status.OK
    assert report.status is Status.CRIT


def test_region_and_fleet_totals(example_fleet: Fleet) -> None:
    report = capacity_report(snapshot(example_fleet))
    beijing = report.regions["beijing"]
    assert (beijing.devices, beijing.max_devices, beijing.headroom, beijing.limit) == (300, 450, 78, "latency:vad")
    assert (report.fleet.devices, report.fleet.max_devices, report.fleet.headroom) == (700, 1050, 182)
    assert beijing.latency_p95 == LATENCY  # the slowest node's p95, all equal here


def test_forecast_days_until_full_from_a_linear_trend(example_fleet: Fleet) -> None:
    # Three days of hourly history growing 10 devices a day, from 70 to 100: full (126) in 2.6 days.
    history = [(1_700_000_000.0 + h * 3600, 70 + 10 * h / 24) for h in range(73)]
    report = capacity_report(snapshot(example_fleet, sh_edge_01=metrics("sh-edge-01", "shanghai", history=history)))
    node = report.nodes["sh-edge-01"]
    assert node.growth_per_day == pytest.approx(10.0)
    assert node.days_until_full == pytest.approx(2.6)
    assert node.status is Status.WARN and node.reasons == ["full in 2.6 days at +10.0 devices/day"]
    # The region's trend is the sum of its nodes' (only sh-edge-01 has history): same slope, its headroom 52.
    assert report.regions["shanghai"].days_until_full == pytest.approx(5.2)
    flat = capacity_report(snapshot(example_fleet)).nodes["sh-edge-01"]
    assert flat.growth_per_day is None and flat.days_until_full is None  # no history, no forecast
    quiet = capacity_report(snapshot(example_fleet, sh_edge_01=metrics("sh-edge-01", "shanghai", history=history[:5])))
    assert quiet.nodes["sh-edge-01"].growth_per_day is None  # 4 hours is too short to call a trend
    short = capacity_report(
        snapshot(example_fleet, sh_edge_01=metrics("sh-edge-01", "shanghai", history=history)),
        CapacityThresholds(min_trend_days=4),
    )
    assert short.nodes["sh-edge-01"].growth_per_day is None  # 3 whole days of peaks, 4 asked for


def diurnal(days: int, growth: float, noise: list[float]) -> list[tuple[float, float]]:
    """Hourly devices over `days`: a daily ramp from 20 to 100 (+ growth a day) and a per-day noise of the peak."""
    start = 1_700_000_000.0
    return [
        (
            start + h * 3600,
            (20 + 80 * math.sin(math.pi * (h % 24) / 24)) * noise[h // 24 % len(noise)] + growth * h / 24,
        )
        for h in range(days * 24 + 1)
    ]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (diurnal(1, 0.0, [1.0]), None),  # one day: the morning ramp is no trend (it read +75 devices/day)
        (diurnal(2, 0.0, [1.0]), None),
        (diurnal(7, 0.0, [1.0, 0.97, 1.03, 0.99, 1.02, 0.98, 1.01]), 0.0),  # a week without growth: no "full in"
        (diurnal(7, 0.5, [1.0, 0.97, 1.03, 0.99, 1.02, 0.98, 1.01]), 0.0),  # +0.5/day is inside the peaks' noise
        (diurnal(7, 5.0, [1.0, 0.99, 1.01, 1.0, 1.0, 0.99, 1.01]), pytest.approx(5.0, abs=0.6)),
    ],
)
def test_trends_follow_daily_peaks_over_enough_days(
    history: list[tuple[float, float]], expected: object, example_fleet: Fleet
) -> None:
    assert fit_growth(history, CapacityThresholds()) == expected
    node = capacity_report(snapshot(example_fleet, sh_edge_01=metrics("sh-edge-01", "shanghai", history=history)))
    reasons = node.nodes["sh-edge-01"].reasons
    assert any("full in" in r for r in reasons) == (expected not in (None, 0.0)), reasons


def test_a_node_over_its_limit_is_not_also_full_in_zero_days(example_fleet: Fleet) -> None:
    history = [(1_700_000_000.0 + h * 3600, 70 + 10 * h / 24) for h in range(73)]
    hot = metrics("bj-edge-02", "beijing", cpu=0.85, history=history)
    node = capacity_report(snapshot(example_fleet, bj_edge_02=hot)).nodes["bj-edge-02"]
    assert node.growth_per_day == pytest.approx(10.0) and node.days_until_full is None
    assert node.reasons == ["cpu 85.0% > KPI 80%"]


def test_unknown_node_makes_its_region_unknown(example_fleet: Fleet) -> None:
    lost = NodeMetrics(node="gz-edge-01", region="guangzhou", problems=["scrape target down (up == 0)"])
    report = capacity_report(snapshot(example_fleet, gz_edge_01=lost))
    region = report.regions["guangzhou"]
    assert report.nodes["gz-edge-01"].status is Status.UNKNOWN
    assert (region.status, region.devices, region.headroom) == (Status.UNKNOWN, None, None)
    assert region.reasons == ["unknown (no trustworthy metrics): gz-edge-01"]
    assert report.status is Status.UNKNOWN


def test_cost_model_by_hand(example_fleet: Fleet) -> None:
    per_node = {
        n.id.replace("-", "_"): metrics(n.id, n.region, devices=142.0, cpu=0.5, memory=0.4, gpu=0.6)
        for n in example_fleet.edge_nodes()
    }
    cost = cost_check(snapshot(example_fleet, **per_node))
    # 1,610,000 / 3 / 12 = 44,722.22 capex a month + 1,550,000 / 12 = 129,166.67 opex.
    assert cost.cost_month == pytest.approx(173_888.889, abs=1e-3)
    assert cost.active_devices == 994
    assert cost.cost_per_device_month == pytest.approx(174.938, abs=1e-3)
    # Idle is the plan's definition, unused device slots: 1 - 994/1050 = 5.33 % (whatever the CPU, memory
    # and GPU use); of the 44,722.22 capex a month that is 2,385.19. It used to be 20.9 %, split by utilization.
    assert cost.idle_share == pytest.approx(56 / 1050)
    assert cost.idle_cost_month == pytest.approx(44_722.222 * 56 / 1050, abs=1e-3)
    assert cost.to_dict()["idle_definition"] == IDLE_DEFINITION
    assert cost.payback_years == pytest.approx(1_610_000 / (994 * 3000 - 1_550_000))
    assert (cost.status, cost.reasons) == (Status.OK, [])


def test_plan_and_cost_check_share_one_cost_model(example_fleet: Fleet) -> None:
    """With the spec's devices active, the cost check's figures are the plan's rows."""
    per_node = {
        n.id.replace("-", "_"): metrics(n.id, n.region, devices=float(n.devices)) for n in example_fleet.edge_nodes()
    }
    cost = cost_check(snapshot(example_fleet, **per_node))
    rows = {r.check: r for r in build_plan(example_fleet).rows if r.section == "cost"}
    assert cost.active_devices == example_fleet.devices == 1000
    assert cost.idle_share == pytest.approx(rows["idle capacity"].value)  # 50 of 1,050 slots
    assert cost.cost_per_device_month == pytest.approx(rows["cost per device per month"].value)
    assert cost.payback_years == pytest.approx(rows["payback"].value)
    assert cost.run_rate_revenue_year == rows["revenue per year"].value


def test_cost_without_margin_never_pays_back(example_fleet: Fleet) -> None:
    per_node = {n.id.replace("-", "_"): metrics(n.id, n.region, devices=50.0) for n in example_fleet.edge_nodes()}
    cost = cost_check(snapshot(example_fleet, **per_node))
    # 350 devices: 1,050,000 a year of revenue < 1,550,000 of opex.
    assert cost.payback_years is None
    assert cost.status is Status.CRIT
    assert "¥496.83/device/month > ¥200.00" in cost.reasons, cost.reasons  # money as in the plan
    assert "never pays back: revenue ¥1,050,000 <= opex ¥1,550,000/year" in cost.reasons


def test_cost_is_unknown_when_a_node_has_no_metrics(example_fleet: Fleet) -> None:
    lost = NodeMetrics(node="bj-edge-03", region="beijing", problems=["no scrape target"])
    cost = cost_check(snapshot(example_fleet, bj_edge_03=lost))
    assert cost.status is Status.UNKNOWN and cost.active_devices is None
    assert cost.reasons == ["no trustworthy metrics for 1 edge node(s): bj-edge-03"]
