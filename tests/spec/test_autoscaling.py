"""The N+1-at-peak shortcut: judging each survivor against the loss that moves the most onto it finds exactly what
judging every loss finds (the brute force is the definition)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xzctl.spec import Fleet, bundled_example_path, load_fleet
from xzctl.spec.autoscaling import loss_shortfalls, region_peak_shortfalls
from xzctl.spec.models import EdgeNode, Region

EXAMPLE = load_fleet(bundled_example_path()).fleet

node_load = st.tuples(st.integers(0, 200), st.integers(1, 220), st.integers(1, 12))  # devices, max_devices, asr max


def _node(template: EdgeNode, index: int, devices: int, max_devices: int, asr_max: int) -> EdgeNode:
    asr = template.services.asr
    assert asr.autoscaling is not None
    scaled = asr.model_copy(update={"autoscaling": asr.autoscaling.model_copy(update={"max": asr_max})})
    return template.model_copy(
        update={
            "id": f"{template.id}-{index}",
            "devices": devices,
            "capacity": template.capacity.model_copy(update={"max_devices": max_devices}),
            "services": template.services.model_copy(update={"asr": scaled}),
        }
    )


def _region(fleet: Fleet, loads: list[tuple[int, int, int]]) -> Region:
    beijing = fleet.regions["beijing"]
    template = beijing.edge_nodes[0]
    return beijing.model_copy(update={"edge_nodes": [_node(template, i, *load) for i, load in enumerate(loads)]})


@settings(max_examples=300, deadline=None)
@given(loads=st.lists(node_load, min_size=1, max_size=7))
def test_region_peak_shortfalls_equal_judging_every_loss(loads: list[tuple[int, int, int]]) -> None:
    region = _region(EXAMPLE, loads)
    every_loss = [s for lost in region.edge_nodes for s in loss_shortfalls(region, lost)] if len(loads) > 1 else []
    assert region_peak_shortfalls(region) == every_loss


def test_the_shortcut_still_reports_a_real_shortfall() -> None:
    """Two nodes at 145 of 150 with asr max 2: losing either puts 150 on the other, which needs more than 2."""
    region = _region(EXAMPLE, [(145, 150, 2), (145, 150, 2), (10, 150, 12)])
    found = {(s.lost, s.node, s.service) for s in region_peak_shortfalls(region)}
    assert ("bj-edge-01-0", "bj-edge-01-1", "asr") in found
