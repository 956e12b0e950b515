"""Generated fleets: valid at any size, deterministic by seed."""

from __future__ import annotations

import pytest

from xzctl.errors import BadInputError
from xzctl.spec.generate import generate_fleet_document
from xzctl.spec.load import build_fleet
from xzctl.spec.validate import cross_checks


@pytest.mark.parametrize(("nodes", "regions"), [(1, 1), (7, 3), (120, 3), (1000, 20)])
def test_generated_fleet_is_valid(nodes: int, regions: int) -> None:
    fleet = build_fleet(generate_fleet_document(nodes), {}, "generated")
    errors = [p for p in cross_checks(fleet, file="generated", lines={}) if p.severity == "error"]
    assert errors == []
    assert len(fleet.edge_nodes()) == nodes
    assert len(fleet.regions) == regions
    assert len({n.id for n in fleet.edge_nodes()}) == nodes
    assert len({n.host.address for n in fleet.edge_nodes()}) == nodes
    assert all(130 <= n.devices <= 140 for n in fleet.edge_nodes())
    assert fleet.kpis.throughput.concurrent_devices == fleet.devices
    assert next(i.quantity for i in fleet.cost.capex if i.kind == "edge_server") == nodes


def test_same_seed_same_fleet_other_seed_other_devices() -> None:
    assert generate_fleet_document(50, seed=3) == generate_fleet_document(50, seed=3)
    a, b = generate_fleet_document(50, seed=3), generate_fleet_document(50, seed=4)
    devices = [[n["devices"] for r in d["regions"].values() for n in r["edge_nodes"]] for d in (a, b)]
    assert devices[0] != devices[1]


def test_devices_per_node_and_regions_are_honoured() -> None:
    doc = generate_fleet_document(10, devices_per_node=100, regions=2, device_jitter=0)
    fleet = build_fleet(doc, {}, "generated")
    assert list(fleet.regions) == ["beijing", "shanghai"]
    assert fleet.devices == 1000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 0}, "nodes must be between 1 and 10,000"),
        ({"nodes": 5, "devices_per_node": 151}, "devices_per_node must be between 1 and 150"),
        ({"nodes": 5, "regions": 0}, "regions must be at least 1"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        generate_fleet_document(**kwargs)
