"""The capacity report reads the measured devices per node of a node's class where its spec names a profile."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.handmade import metrics, snapshot
from tests.fixtures.measured import measured_example
from xzctl.checks import Status, capacity_report
from xzctl.checks.failover import node_loads
from xzctl.spec import Fleet


def test_measured_devices_per_node_is_a_limit_and_named_in_json(tmp_path: Path) -> None:
    loaded = measured_example(tmp_path, 120)
    # bj-edge-01 carries 130 devices: within max_devices 150, over the 120 measured
    snap = snapshot(loaded.fleet, bj_edge_01=metrics("bj-edge-01", "beijing", devices=130.0))
    report = capacity_report(snap)
    node = report.to_dict()["nodes"][0]
    assert node["name"] == "bj-edge-01"
    assert node["measured_devices_per_node"] == 120
    assert node["measured_source"] == str(tmp_path / "edge-standard.yaml")
    assert node["limit"] == "measured" and node["headroom"] == -10
    assert report.nodes["bj-edge-01"].status is Status.CRIT
    assert "130 devices > 120 measured per node of its class" in report.nodes["bj-edge-01"].reasons
    loads = {n.node: n for n in node_loads(loaded.fleet, report, snap)}  # what `check failover` places devices on
    assert loads["bj-edge-01"].kpi_capacity == 120 and loads["bj-edge-01"].limit == "measured"
    assert all(n.kpi_capacity <= 120 for n in loads.values())


def test_without_a_profile_nothing_is_measured(example_fleet: Fleet) -> None:
    node = capacity_report(snapshot(example_fleet)).to_dict()["nodes"][0]
    assert node["measured_devices_per_node"] is None and node["measured_source"] is None
    assert "measured" not in node["devices_at_limit"]
