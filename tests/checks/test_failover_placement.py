"""Failover placement on small hand-made fleets; every expected number is worked out in the comments."""

from __future__ import annotations

from xzctl.checks.failover import simulate_all, simulate_loss
from xzctl.spec.failover import NodeLoad
from xzctl.status import Status


def _load(
    node: str, region: str, devices: int, kpi: int, *, score: float = 0.5, per_device: float = 1 / 256
) -> NodeLoad:
    return NodeLoad(node, region, devices, kpi, 150, score, per_device, limit="cpu")


def _fleet() -> list[NodeLoad]:
    # Region a: a1, a2 at 100 devices with KPI room to 120; a3 at 140 (its loss is the test).
    # Region b: b1 at 50 devices, KPI room to 120. max_devices 150 everywhere.
    return [
        _load("a1", "a", 100, 120),
        _load("a2", "a", 100, 120),
        _load("a3", "a", 140, 150),
        _load("b1", "b", 50, 120),
    ]


def test_losing_a3_fills_region_then_other_region_then_overloads_same_region() -> None:
    loads = _fleet()
    v = simulate_loss(loads, "a3", "node", {2}, cross_region=True, same=[0, 1, 2], other=[3])
    # 140 devices: within KPIs 20 + 20 in region a, 70 on b1 (to 120); 30 left go past the KPI in
    # region a first, split evenly (equal scores): a1 and a2 end at 135, 15 above their KPI capacity.
    assert v.placed_on == {"b1": 70, "a1": 35, "a2": 35}
    assert (v.placed_same_region, v.placed_other_regions, v.unserved) == (70, 70, 0)
    assert v.status is Status.CRIT and v.outcome == "overloads"
    assert [(o.node, o.over_by, o.limit) for o in v.overloaded] == [("a1", 15, "cpu"), ("a2", 15, "cpu")]
    assert "a1 by 15 devices (cpu)" in v.reason


def test_without_cross_region_failover_devices_are_left_without_service() -> None:
    loads = _fleet()
    v = simulate_loss(loads, "a3", "node", {2}, cross_region=False, same=[0, 1, 2], other=[3])
    # Region a can take 50 + 50 up to max_devices 150: 40 of 140 devices find no node.
    assert v.placed_on == {"a1": 50, "a2": 50}
    assert v.unserved == 40
    assert v.status is Status.CRIT and v.outcome == "drops devices"
    assert v.reason == "40 devices left without service"


def test_small_loss_survives_within_kpis_on_the_best_scored_node() -> None:
    # a1 scores 0.75, a2 0.5; each device costs 1/64 of score, so a1 wins the first 17 devices
    # before a2's score is better. A 16-device loss lands on a1 only.
    loads = [
        _load("a1", "a", 10, 120, score=0.75, per_device=1 / 64),
        _load("a2", "a", 10, 120, score=0.5, per_device=1 / 64),
        _load("a3", "a", 16, 150),
    ]
    v = simulate_loss(loads, "a3", "node", {2}, cross_region=True, same=[0, 1, 2], other=[])
    assert v.placed_on == {"a1": 16}
    assert v.status is Status.OK and v.outcome == "survives"
    assert v.overloaded == [] and v.unserved == 0


def test_one_device_at_a_time_alternates_once_scores_meet() -> None:
    # After 16 devices a1's score is 0.5, a2's too; from there each takes turns (1/64 apart at most).
    loads = [
        _load("a1", "a", 10, 120, score=0.75, per_device=1 / 64),
        _load("a2", "a", 10, 120, score=0.5, per_device=1 / 64),
        _load("a3", "a", 56, 150),
    ]
    v = simulate_loss(loads, "a3", "node", {2}, cross_region=True, same=[0, 1, 2], other=[])
    # 56 = 16 (a1 alone) + 40 shared evenly: a1 36, a2 20.
    assert v.placed_on == {"a1": 36, "a2": 20}


def test_unknown_nodes_receive_nothing_and_their_loss_is_unknown() -> None:
    loads = _fleet()
    loads[0] = NodeLoad("a1", "a", 100, 0, 150, 0.0, 0.0, known=False)
    report = simulate_all(loads, {"a": True, "b": True})
    by_name = {(f.kind, f.lost): f for f in report.failures}
    assert by_name[("node", "a1")].status is Status.UNKNOWN
    assert "a1" in by_name[("node", "a1")].reason
    assert "a1" not in by_name[("node", "a2")].placed_on
    assert by_name[("region", "a")].status is Status.UNKNOWN
    assert report.status is Status.CRIT  # a3's loss overloads: a known failure outranks unknown


def test_region_loss_goes_to_other_regions_only_when_allowed() -> None:
    loads = _fleet()
    allowed = simulate_all(loads, {"a": True, "b": True})
    refused = simulate_all(loads, {"a": False, "b": True})
    region_a = next(f for f in allowed.failures if f.lost == "a")
    # Region a holds 340 devices; b1 takes 70 within its KPI and 30 more up to max_devices.
    assert region_a.placed_on == {"b1": 100}
    assert region_a.unserved == 240
    assert next(f for f in refused.failures if f.lost == "a").unserved == 340
    # Losing region b (50 devices): region a has 20 + 20 + 10 KPI room, exactly enough.
    region_b = next(f for f in allowed.failures if f.lost == "b")
    assert region_b.placed_other_regions == 50 and region_b.placed_on["a3"] == 10
    assert region_b.status is Status.OK and region_b.overloaded == []
    assert len(allowed.failures) == 4 + 2


def test_failover_disabled_node_keeps_its_devices_in_the_region() -> None:
    # networking.failover_enabled: false means "no cross-region move" (as in the simulator and the plan);
    # the check used to drop all 140 devices. Region a takes 50 + 50 up to max_devices; b1 gets none.
    loads = _fleet()
    loads[2] = NodeLoad("a3", "a", 140, 150, 150, 0.5, 1 / 256, failover_enabled=False)
    v = simulate_loss(loads, "a3", "node", {2}, cross_region=True, same=[0, 1, 2], other=[3])
    assert v.placed_on == {"a1": 50, "a2": 50}
    assert (v.placed_same_region, v.placed_other_regions, v.unserved) == (100, 0, 40)
