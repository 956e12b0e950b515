"""One failover model: the static plan, the failover check and the simulator place a lost node's devices alike.

The bundled example's beijing runs 145 + 145 + 140 devices on three nodes of 150 slots. Losing bj-edge-01
(145 devices): bj-edge-02 and -03 take 5 + 10 = 15; 130 need another region, where the four nodes have
5 + 5 + 10 + 10 = 30 free slots. With networking.failover_enabled: false on bj-edge-01 its devices stay in
beijing ("no cross-region move"): 130 are left without service. Before this model was shared, the check
dropped all 145 devices and the plan ignored the setting (100).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from xzctl.checks.failover import simulate_loss
from xzctl.plan import build_plan
from xzctl.simulator.model import FleetModel
from xzctl.spec import Fleet, bundled_example_path
from xzctl.spec.failover import may_leave_region, spec_loads
from xzctl.spec.load import build_fleet

LOST = "bj-edge-01"


def _fleet(failover_enabled: bool) -> Fleet:
    doc: dict[str, Any] = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))
    profile = copy.deepcopy(doc["node_profiles"]["edge-standard"])
    profile["networking"]["failover_enabled"] = failover_enabled
    doc["node_profiles"]["edge-lost"] = profile
    doc["regions"]["beijing"]["edge_nodes"][0]["profile"] = "edge-lost"
    return build_fleet(doc, {}, "test")


CASES = [(True, 30, 100), (False, 0, 130)]


@pytest.mark.parametrize(("enabled", "other_regions", "unserved"), CASES)
def test_the_plan_row(enabled: bool, other_regions: int, unserved: int) -> None:
    fleet = _fleet(enabled)
    row = next(r for r in build_plan(fleet).rows if (r.section, r.subject) == ("n+1", "beijing"))
    assert row.check == f"lose {LOST}"
    assert row.reason.startswith(f"{unserved} devices left without an edge node")
    where = f", {other_regions} fit in other regions" if enabled else f"(networking.failover_enabled off on {LOST})"
    assert where in row.reason
    fleet_row = next(r for r in build_plan(fleet).rows if (r.section, r.subject) == ("n+1", "fleet"))
    assert fleet_row.reason.startswith(f"{unserved} of 1,000 devices left without an edge node")


@pytest.mark.parametrize(("enabled", "other_regions", "unserved"), CASES)
def test_the_failover_check(enabled: bool, other_regions: int, unserved: int) -> None:
    loads = spec_loads(_fleet(enabled))
    beijing = [i for i, n in enumerate(loads) if n.region == "beijing"]
    others = [i for i, n in enumerate(loads) if n.region != "beijing"]
    verdict = simulate_loss(loads, LOST, "node", {0}, cross_region=True, same=beijing, other=others)
    assert (verdict.placed_same_region, verdict.placed_other_regions, verdict.unserved) == (15, other_regions, unserved)


@pytest.mark.parametrize(("enabled", "other_regions", "unserved"), CASES)
def test_the_simulator(enabled: bool, other_regions: int, unserved: int) -> None:
    fleet = _fleet(enabled)
    assert may_leave_region(fleet, fleet.node(LOST)) is enabled
    model = FleetModel(fleet, start=0.0)
    for node in fleet.edge_nodes():
        model.control({"action": "set_devices", "node": node.id, "devices": node.devices}, 0.0)
    moving = model.control({"action": "node_down", "node": LOST, "reconnect_seconds": [0, 0]}, 0.0)["moving"]
    assert moving == 145
    model.process_arrivals(1.0)
    moved = model.moved.get(LOST, {})
    assert sum(n for node, n in moved.items() if node.startswith("bj-")) == 15
    assert sum(n for node, n in moved.items() if not node.startswith("bj-")) == other_regions
    assert model.disconnected.get(LOST, 0) == unserved
