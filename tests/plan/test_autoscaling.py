"""The autoscaling budget: max within the GPU slots, N+1 at peak; refused, warned and passed by the same arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.manifests import variant
from xzctl.errors import FleetSpecError
from xzctl.plan.autoscaling import autoscaling_rows
from xzctl.plan.static import Verdict
from xzctl.spec import Fleet, bundled_example_path, load_fleet
from xzctl.spec.autoscaling import devices_after_loss, loss_shortfalls, needed_replicas, region_peak_shortfalls

ASR = r"autoscaling: \{min: 2, max: 7, signal: queue_depth, target: 2\}"


def _rows(fleet: Fleet) -> dict[str, Verdict]:
    return {r.subject: r.verdict for r in autoscaling_rows(fleet)}


def test_bundled_example_is_n_plus_one_at_peak(example_fleet: Fleet) -> None:
    assert all(region_peak_shortfalls(r) == [] for r in example_fleet.regions.values())
    assert _rows(example_fleet) == {"beijing": Verdict.OK, "shanghai": Verdict.OK, "guangzhou": Verdict.OK}


@pytest.mark.parametrize(
    ("running", "before", "after", "needed"),
    [
        (6, 145, 145, 6),  # no growth
        (6, 145, 147, 6),  # within the slack the target leaves
        (6, 145, 150, 7),  # +3.4 %
        (4, 100, 150, 6),
        (0, 100, 150, 0),  # switched off stays off
        (3, 0, 50, 3),  # no devices before: no growth factor to apply
    ],
)
def test_needed_replicas(running: int, before: int, after: int, needed: int) -> None:
    assert needed_replicas(running, before, after) == needed


def test_lost_devices_spread_by_free_slots(example_fleet: Fleet) -> None:
    beijing = example_fleet.regions["beijing"]
    lost = beijing.edge_nodes[0]  # 145 devices; the others have 5 and 10 free slots
    assert devices_after_loss(beijing, lost) == {"bj-edge-02": 150, "bj-edge-03": 150}


def test_a_peak_that_does_not_survive_a_node_loss_is_caught(tmp_path: Path) -> None:
    """max 6 for asr: enough at 145 devices, not at 150 after a neighbour's devices reconnect."""
    fleet = variant(tmp_path, (ASR, "autoscaling: {min: 2, max: 6, signal: queue_depth, target: 2}"))
    shorts = region_peak_shortfalls(fleet.regions["beijing"])
    assert {(s.node, s.service, s.needed, s.limit) for s in shorts} >= {("bj-edge-02", "asr", 7, 6)}
    assert _rows(fleet)["beijing"] is Verdict.WARN
    warnings = load_fleet(tmp_path / "fleet.yaml").warnings
    assert any("not N+1 at peak" in w.message and "raise services.asr.autoscaling.max to 7" in w.fix for w in warnings)


def test_live_replicas_and_devices_replace_the_spec_sizing(example_fleet: Fleet) -> None:
    """Running 7 asr replicas (at max) for 100 devices: 50 more devices need 11, beyond max 7."""
    beijing = example_fleet.regions["beijing"]
    running = {("bj-edge-02", "asr"): 7}
    devices = {"bj-edge-01": 145, "bj-edge-02": 100, "bj-edge-03": 140}
    shorts = loss_shortfalls(beijing, beijing.edge_nodes[0], running, devices)
    assert [(s.node, s.service, s.needed, s.limit) for s in shorts if s.service == "asr"] == [
        ("bj-edge-02", "asr", 11, 7)
    ]
    assert loss_shortfalls(beijing, beijing.edge_nodes[0], {("bj-edge-02", "asr"): 2}, devices) != shorts


def test_max_beyond_the_gpu_slots_fails_the_plan(tmp_path: Path) -> None:
    fleet = variant(tmp_path, (ASR, "autoscaling: {min: 2, max: 9, signal: queue_depth, target: 2}"))
    assert _rows(fleet)["beijing"] is Verdict.FAIL
    warnings = load_fleet(tmp_path / "fleet.yaml").warnings
    assert any("at their autoscaling max the services need 18 GPU slots" in w.message for w in warnings)


def test_replicas_outside_min_max_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FleetSpecError) as caught:
        variant(tmp_path, (ASR, "autoscaling: {min: 7, max: 7}"))
    assert any("replicas 6 is outside autoscaling min 7..max 7" in p.message for p in caught.value.problems)


def test_cloud_max_above_the_gpu_servers_fails(tmp_path: Path) -> None:
    fleet = variant(
        tmp_path,
        (r"replicas: 8, gpu_per_replica: 2", "replicas: 0, gpu_per_replica: 2"),  # 32 GPUs: qwen-72b x 8
        (r"autoscaling: \{min: 2, max: 4, signal: requests, target: 6\}", "autoscaling: {min: 2, max: 9}"),
        (r"replicas: 4, gpu_per_replica: 4", "replicas: 7, gpu_per_replica: 4"),
    )
    assert _rows(fleet)["cloud"] is Verdict.FAIL
    assert bundled_example_path().is_file()
