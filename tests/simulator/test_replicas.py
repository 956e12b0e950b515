"""The simulator's autoscaler: the HPA formula, its bounds and behaviour, and replicas setting capacity."""

from __future__ import annotations

import pytest

from xzctl.errors import BadInputError
from xzctl.metrics import contract as c
from xzctl.simulator.exposition import node_families
from xzctl.simulator.model import FleetModel
from xzctl.simulator.replicas import desired_replicas
from xzctl.spec import Fleet

T0 = 1_780_000_000.0


@pytest.mark.parametrize(
    ("current", "metric", "target", "want"),
    [(4, 2.0, 2.0, 4), (4, 2.1, 2.0, 4), (4, 3.0, 2.0, 6), (4, 0.5, 2.0, 1), (6, 1.7, 2.0, 6), (6, 1.6, 2.0, 5)],
)
def test_hpa_formula_with_its_tolerance(current: int, metric: float, target: float, want: int) -> None:
    assert desired_replicas(current, metric, target) == want


def _replicas(model: FleetModel, node: str, service: str) -> int:
    state = model.nodes[node]
    return model.autoscaler.count(state.spec, service, state.spec.services.inference()[service])


def _run(model: FleetModel, start: float, seconds: float) -> float:
    t = start
    while t < start + seconds:
        t += 10.0
        model.advance(t)
    return t


def test_off_by_default_the_spec_counts_run(example_fleet: Fleet) -> None:
    model = FleetModel(example_fleet, seed=1, start=T0)
    model.control({"action": "set_devices", "node": "bj-edge-01", "devices": 2000}, T0)
    _run(model, T0, 120)
    assert _replicas(model, "bj-edge-01", "asr") == 6
    assert model.state(T0 + 120)["replicas"] == {}


def test_overload_scales_up_fast_within_max_then_down_slowly(example_fleet: Fleet) -> None:
    model = FleetModel(example_fleet, seed=1, start=T0)
    assert model.control({"action": "autoscaling", "enabled": True}, T0)["autoscaling"] is True
    model.control({"action": "set_devices", "node": "bj-edge-01", "devices": 1500}, T0)
    t = _run(model, T0, 60)
    assert _replicas(model, "bj-edge-01", "asr") == 7  # at max within a minute, never above
    assert _replicas(model, "bj-edge-02", "asr") < 7  # its neighbours follow their own load
    model.control({"action": "set_devices", "node": "bj-edge-01", "devices": 20}, t)
    t = _run(model, t, 300)
    assert _replicas(model, "bj-edge-01", "asr") == 7  # inside the 10-minute stabilisation window
    t = _run(model, t, 600)
    after = _replicas(model, "bj-edge-01", "asr")
    assert 2 <= after < 7 and 7 - after <= 600 / 120 + 1  # one pod per 2 minutes, not below min


def test_replicas_set_capacity_and_are_exposed(example_fleet: Fleet) -> None:
    """At night the autoscaler goes to min: fewer replicas, a busier stage, and the gauge says so."""
    model = FleetModel(example_fleet, seed=1, start=T0)
    model.control({"action": "autoscaling", "enabled": True}, T0)
    _run(model, T0, 1800)
    node = model.nodes["bj-edge-01"]
    assert _replicas(model, "bj-edge-01", "asr") < 6
    loads = model._stage_loads(node, 10.0)
    assert loads["asr"].capacity == pytest.approx(_replicas(model, "bj-edge-01", "asr") * 8 / 0.9)
    (family,) = [f for f in node_families(model, node) if f.metric is c.SERVICE_REPLICAS]
    assert f'service="asr"}} {_replicas(model, "bj-edge-01", "asr")}' in "\n".join(family.samples)


def test_reset_turns_the_autoscaler_off_as_at_start(example_fleet: Fleet) -> None:
    model = FleetModel(example_fleet, seed=1, start=T0)
    model.control({"action": "autoscaling", "enabled": True}, T0)
    model.control({"action": "set_devices", "node": "bj-edge-01", "devices": 1500}, T0)
    t = _run(model, T0, 60)
    assert model.state(t)["replicas"] != {}
    model.control({"action": "reset"}, t)
    assert model.state(t)["replicas"] == {}
    assert not model.autoscaler.enabled


def test_bad_control_is_refused(example_fleet: Fleet) -> None:
    model = FleetModel(example_fleet, seed=1, start=T0)
    with pytest.raises(BadInputError):
        model.control({"action": "autoscaling", "enabled": "yes"}, T0)
