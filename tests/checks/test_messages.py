"""Messages people read: no `None` where a number is unknown, no warn or crit without its reason."""

from __future__ import annotations

from tests.fixtures.handmade import metrics, snapshot
from xzctl.checks import Status, capacity_report
from xzctl.checks.snapshot import NodeMetrics
from xzctl.spec import Fleet


def test_a_region_that_is_warn_says_which_node_makes_it_so(example_fleet: Fleet) -> None:
    # 145 of 150 devices: headroom 5 is a warning on the node, and so on its region and the fleet.
    report = capacity_report(snapshot(example_fleet, sh_edge_01=metrics("sh-edge-01", "shanghai", devices=145.0)))
    assert report.nodes["sh-edge-01"].status is Status.WARN
    for row in (report.regions["shanghai"], report.fleet):
        assert row.status is Status.WARN
        assert row.reasons == ["warn: sh-edge-01"]  # by name: the node's own row says why, once
    for row in [*report.nodes.values(), *report.regions.values(), report.fleet]:
        assert row.status is Status.OK or row.reasons, f"{row.name} is {row.status} without a reason"


def test_an_unknown_fleet_says_so_instead_of_none(example_fleet: Fleet) -> None:
    down = NodeMetrics(node="gz-edge-02", region="guangzhou", problems=["scrape target down (up == 0)"])
    summary = capacity_report(snapshot(example_fleet, gz_edge_02=down)).summary()
    assert "None" not in summary
    assert summary.startswith("capacity unknown: devices not known; gz-edge-02 unknown: scrape target down")
