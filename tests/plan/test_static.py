"""The static plan: the seed's own figures and contradictions, and hand-made fleets for each verdict."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.golden import assert_golden
from xzctl.plan import Plan, PlanRow, Verdict, build_plan
from xzctl.spec import Fleet, bundled_example_path
from xzctl.spec.generate import generate_fleet_document
from xzctl.spec.load import build_fleet

GOLDEN = Path(__file__).parent / "golden"
EXAMPLE: dict[str, Any] = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))


def _row(plan: Plan, section: str, subject: str, check: str | None = None) -> PlanRow:
    found = [r for r in plan.rows if r.section == section and r.subject == subject and check in (None, r.check)]
    assert len(found) == 1, (section, subject, check, found)
    return found[0]


def _node(node_id: str, devices: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": node_id,
        "profile": "edge-standard",
        "devices": devices,
        "public_hostname": f"{node_id}.example",
        "host": {"address": f"{node_id}.mgmt.xiaozhi.example"},
        **extra,
    }


def _fleet(regions: dict[str, list[dict[str, Any]]], change: Callable[[dict[str, Any]], None] | None = None) -> Fleet:
    doc = copy.deepcopy(EXAMPLE)
    doc["regions"] = {name: {"edge_nodes": nodes} for name, nodes in regions.items()}
    if change is not None:
        change(doc)
    # Schema only: the plan must also judge specs that cross-field validation would refuse.
    return build_fleet(doc, {}, "test")


def test_bundled_example_shows_the_seeds_contradictions(example_fleet: Fleet) -> None:
    plan = build_plan(example_fleet)
    for region, lost, kept, devices in (
        ("beijing", "bj-edge-01", 300, 430),
        ("shanghai", "sh-edge-01", 150, 290),
        ("guangzhou", "gz-edge-01", 150, 280),
    ):
        row = _row(plan, "n+1", region)
        assert row.verdict is Verdict.FAIL
        assert (row.check, row.value, row.limit) == (f"lose {lost}", devices, kept)
        assert row.reason.startswith("100 devices left without an edge node")
        assert "add 1 edge node(s) of 150 devices" in row.reason
    fleet_n1 = _row(plan, "n+1", "fleet")
    assert (fleet_n1.verdict, fleet_n1.value, fleet_n1.limit) == (Verdict.FAIL, 1000, 900)
    assert fleet_n1.reason.startswith("100 of 1,000 devices")

    cloud = _row(plan, "cloud-gpu", "cloud")  # the example halves the seed's replicas to fit its 4 servers
    assert (cloud.verdict, cloud.value, cloud.limit) == (Verdict.WARN, 32, 32)
    assert "qwen-72b 4x4=16 + qwen-14b 8x2=16 = 32" in cloud.reason
    assert "losing one server strands replicas" in cloud.reason

    assert _row(plan, "capacity", "fleet").value == 1000 and _row(plan, "capacity", "fleet").limit == 1050
    assert _row(plan, "cost", "fleet", "capex").value == 1_610_000
    assert _row(plan, "cost", "fleet", "opex per year").value == 1_550_000
    assert _row(plan, "cost", "fleet", "revenue per year").value == 3_000_000
    net = _row(plan, "cost", "fleet", "net per year")
    assert net.value == 1_450_000 and "= ¥1,450,000" in net.reason
    payback = _row(plan, "cost", "fleet", "payback")
    assert payback.value == pytest.approx(1_610_000 / 1_450_000) and "= 1.1 years" in payback.reason
    fixed = _row(plan, "cost", "fleet", "payback with fixes")
    assert fixed.value == pytest.approx((1_610_000 + 3 * 80_000) / 1_450_000)
    per_device = _row(plan, "cost", "fleet", "cost per device per month")
    assert per_device.value == pytest.approx((1_550_000 + 1_610_000 / 3) / 1000 / 12)
    for node in example_fleet.edge_nodes():
        gpu = _row(plan, "edge-gpu", node.id)
        assert (gpu.verdict, gpu.value, gpu.limit) == (Verdict.OK, 12, 16)
    assert plan.to_dict()["summary"] == {"ok": 18, "warn": 5, "fail": 4}


def _seed_cloud(doc: dict[str, Any]) -> None:
    """The seed plan's own cloud: 8 x 4 + 12 x 2 = 56 GPUs of LLMs on its 4 servers x 8."""
    for model, replicas in zip(doc["cloud"]["llm_models"], (8, 12), strict=True):
        model["replicas"] = replicas
        model["autoscaling"]["max"] = replicas


def test_the_seed_plans_cloud_is_short_of_gpus() -> None:
    cloud = _row(build_plan(_fleet({"a": [_node("a1", 10), _node("a2", 10)]}, _seed_cloud)), "cloud-gpu", "cloud")
    assert (cloud.verdict, cloud.value, cloud.limit) == (Verdict.FAIL, 56, 32)
    assert "qwen-72b 8x4=32 + qwen-14b 12x2=24 = 56 GPUs" in cloud.reason
    assert "add 3 GPU server(s)" in cloud.reason


def test_plan_json_matches_golden(example_fleet: Fleet) -> None:
    assert_golden(GOLDEN / "plan-example.json", json.dumps(build_plan(example_fleet).to_dict(), indent=2) + "\n")


def test_region_that_survives_n_plus_one() -> None:
    plan = build_plan(_fleet({"east": [_node("e1", 100), _node("e2", 100), _node("e3", 100)]}, _seed_cloud))
    row = _row(plan, "n+1", "east")
    assert (row.verdict, row.value, row.limit) == (Verdict.OK, 300, 300)
    assert "hold all 300 devices (0 slots spare)" in row.reason
    assert _row(plan, "capacity", "east").verdict is Verdict.OK  # 300 of 450: ample headroom
    fixes = _row(plan, "cost", "fleet", "payback with fixes")  # the cloud GPUs are still short
    assert "the 0 edge node(s) N+1 needs and the 3 cloud GPU server(s)" in fixes.reason


def test_failover_to_other_regions_is_a_warning_and_without_it_a_failure() -> None:
    regions = {
        "full": [_node("f1", 140), _node("f2", 140)],
        "spare": [_node("s1", 10), _node("s2", 10), _node("s3", 10)],
    }
    row = _row(build_plan(_fleet(regions)), "n+1", "full")
    assert row.verdict is Verdict.WARN
    assert "130 fail over to other regions (420 spare slots there)" in row.reason

    def no_failover(doc: dict[str, Any]) -> None:
        doc["regions"]["full"]["cross_region_failover"] = False

    row = _row(build_plan(_fleet(regions, no_failover)), "n+1", "full")
    assert row.verdict is Verdict.FAIL
    assert row.reason.startswith("130 devices left without an edge node")
    assert "cross_region_failover off" in row.reason


def test_the_largest_node_is_the_one_lost() -> None:
    def big_profile(doc: dict[str, Any]) -> None:
        big = copy.deepcopy(doc["node_profiles"]["edge-standard"])
        big["capacity"]["max_devices"] = 400
        doc["node_profiles"]["edge-big"] = big

    regions = {"mixed": [_node("small", 100), _node("big", 100, profile="edge-big"), _node("small2", 100)]}
    row = _row(build_plan(_fleet(regions, big_profile)), "n+1", "mixed")
    assert row.check == "lose big"
    assert (row.limit, row.verdict) == (300, Verdict.OK)


def test_over_capacity_and_gpu_over_demand_fail() -> None:
    def heavy(doc: dict[str, Any]) -> None:
        doc["node_profiles"]["edge-standard"]["services"]["asr"]["gpu_per_replica"] = 3

    plan = build_plan(_fleet({"hot": [_node("h1", 150), _node("h2", 150)]}, heavy))
    gpu = _row(plan, "edge-gpu", "h1")
    assert (gpu.verdict, gpu.value, gpu.limit) == (Verdict.FAIL, 24, 16)
    assert "8 pods stay Pending" in gpu.reason
    capacity = _row(plan, "capacity", "hot")
    assert capacity.verdict is Verdict.WARN and "0 free slots" in capacity.reason


def test_node_without_gpus_or_gpu_services_is_ok() -> None:
    def cpu_only(doc: dict[str, Any]) -> None:
        profile = doc["node_profiles"]["edge-standard"]
        profile["capacity"]["gpu"] = {"count": 0}
        for name in ("asr", "tts"):
            profile["services"][name]["gpu_per_replica"] = 0
        del profile["services"]["llm"]

    row = _row(build_plan(_fleet({"cpu": [_node("c1", 50), _node("c2", 50)]}, cpu_only)), "edge-gpu", "c1")
    assert (row.verdict, row.value, row.limit) == (Verdict.OK, 0, 0)
    assert "no GPU services" in row.reason


@pytest.mark.parametrize(("servers", "verdict"), [(7, Verdict.WARN), (8, Verdict.OK)])
def test_cloud_gpus_must_survive_losing_a_server(servers: int, verdict: Verdict) -> None:
    def sized(doc: dict[str, Any]) -> None:
        _seed_cloud(doc)
        doc["cloud"]["gpu_servers"]["count"] = servers

    row = _row(build_plan(_fleet({"a": [_node("a1", 10), _node("a2", 10)]}, sized)), "cloud-gpu", "cloud")
    assert (row.verdict, row.value, row.limit) == (verdict, 56, servers * 8)
    assert ("losing one server strands replicas" in row.reason) is (verdict is Verdict.WARN)


def test_a_fleet_losing_money_never_pays_back() -> None:
    def cheap(doc: dict[str, Any]) -> None:
        doc["cost"]["revenue_per_device_year"] = 100

    plan = build_plan(_fleet({"a": [_node("a1", 100), _node("a2", 100)]}, cheap))
    net = _row(plan, "cost", "fleet", "net per year")
    assert (net.verdict, net.value) == (Verdict.FAIL, 200 * 100 - 1_550_000)
    payback = _row(plan, "cost", "fleet", "payback")
    assert (payback.verdict, payback.value) == (Verdict.FAIL, None)
    assert "never" in payback.reason
    assert json.loads(json.dumps(plan.to_dict()))["rows"]  # no Infinity or NaN: strict JSON


def test_generated_1000_node_fleet_plans_every_node() -> None:
    fleet = build_fleet(generate_fleet_document(1000), {}, "generated")
    plan = build_plan(fleet)
    assert sum(1 for r in plan.rows if r.section == "edge-gpu") == 1000
    assert _row(plan, "capacity", "fleet").value == fleet.devices


def test_the_plan_counts_measured_slots_and_says_so(tmp_path: Path) -> None:
    """edge-standard measured at 120 devices per node (a fake curve): beijing's 3 nodes carry 360, not 450."""
    from tests.fixtures.measured import measured_example

    plan = build_plan(measured_example(tmp_path, 120).fleet)
    beijing = _row(plan, "capacity", "beijing")
    assert beijing.limit == 360 and "slots as measured:" in beijing.reason and "edge-standard.yaml" in beijing.reason
    lose = _row(plan, "n+1", "beijing")
    assert lose.limit == 240  # two nodes left, at the measured figure
    assert "of 120 devices" in lose.reason
