"""The production deployer updates one Pulumi stack per region, only where a step changes pins; the sandbox's
also drives its real node."""

from __future__ import annotations

import pytest

from xzctl.manifests.pins import ImagePins, ServicePin, spec_pins
from xzctl.rollout.deploy import SimulatorDeployer, StackDeployer, canaries_removed_first
from xzctl.rollout.plan import canary_nodes, plan_steps, promoted_pins, step_pins
from xzctl.spec import Fleet

NEW = "registry.xiaozhi.example/inference/asr:1.4.0"


def test_stack_updates_follow_the_steps(example_fleet: Fleet) -> None:
    updates: list[tuple[str, ImagePins]] = []
    regions = {name: [n.id for n in r.edge_nodes] for name, r in example_fleet.regions.items()}
    deployer = StackDeployer(lambda region, pins: updates.append((region, pins)), regions, {"stack": "{region}"})
    assert deployer.config() == {"kind": "pulumi", "stack": "{region}"}
    baseline = spec_pins(example_fleet)
    steps = plan_steps(example_fleet, "asr")
    previous = baseline
    touched = []
    for k in range(len(steps)):
        pins = step_pins(baseline, "asr", NEW, canary_nodes(steps, k))
        deployer.apply(pins, previous)
        touched.append([region for region, _ in updates])
        assert all(p is pins for _, p in updates)
        updates.clear()
        previous = pins
    assert touched == [["beijing"], ["beijing"], ["shanghai"], ["guangzhou"]]
    final = promoted_pins(baseline, "asr", NEW, canary_nodes(steps, len(steps) - 1))
    deployer.apply(final, previous)
    # Each region: first its canaries go (stable unchanged), then the stable rolls over to the new image.
    assert [r for r, _ in updates] == ["beijing", "beijing", "shanghai", "shanghai", "guangzhou", "guangzhou"]
    assert all(p is final for _, p in updates[1::2])
    for region, first in updates[::2]:
        assert {first.get(n, "asr") for n in regions[region]} == {baseline.get(regions[region][0], "asr")}
    updates.clear()
    deployer.apply(baseline, None)  # after a crash the live state is unknown: every stack is updated
    assert [r for r, _ in updates] == ["beijing", "shanghai", "guangzhou"]
    assert deployer.current() is None


OLD = "registry.xiaozhi.example/inference/asr:2.2.0"


@pytest.mark.parametrize(
    ("before", "after", "first"),
    [
        (ServicePin(OLD, NEW), ServicePin(NEW), ServicePin(OLD)),  # promote: the canary goes first
        (ServicePin(OLD, NEW), ServicePin(OLD), None),  # rollback: one update deletes the canary
        (ServicePin(OLD), ServicePin(OLD, NEW), None),  # a canary step
        (ServicePin(OLD), ServicePin(NEW), None),  # a stable change without a canary
        (ServicePin(OLD, NEW), ServicePin(NEW, NEW), None),  # the canary stays
    ],
)
def test_a_promotion_removes_the_canary_before_the_stable_rolls_over(
    before: ServicePin, after: ServicePin, first: ServicePin | None
) -> None:
    previous = ImagePins({"n1": {"asr": before, "tts": ServicePin("tts:1")}, "n2": {"asr": ServicePin(OLD)}})
    pins = previous.with_pin("n1", "asr", after)
    got = canaries_removed_first(pins, previous, ["n1", "n2"])
    assert got == (None if first is None else pins.with_pin("n1", "asr", first))
    assert canaries_removed_first(pins, previous, ["n2"]) is None  # another region's nodes: nothing first


def test_after_a_crash_a_promotion_still_removes_the_canary_first() -> None:
    """`previous` unknown (a resumed rollout): what the stack runs decides, so the promote cannot deadlock."""
    running = ImagePins({"n1": {"asr": ServicePin(OLD, NEW)}})
    updates: list[ImagePins] = []
    deployer = StackDeployer(lambda _, pins: updates.append(pins), {"r": ["n1"]}, {}, lambda: running)
    promoted = ImagePins({"n1": {"asr": ServicePin(NEW)}})
    deployer.apply(promoted, None)
    assert updates == [ImagePins({"n1": {"asr": ServicePin(OLD)}}), promoted]


@pytest.mark.parametrize("real_node", [None, "bj-edge-01"])
def test_the_sandbox_deployer_drives_the_real_node_after_the_simulator_and_records_it(real_node: str | None) -> None:
    calls: list[str] = []
    pins = ImagePins({"bj-edge-01": {"asr": ServicePin("r/asr:1", "r/asr:2")}})
    real = (
        (real_node, lambda p, _prev: calls.append(f"real {p.get('bj-edge-01', 'asr').canary}")) if real_node else None
    )
    deployer = SimulatorDeployer(
        lambda a: calls.append(f"sim {a['track']} {a['image']}"), dict, "http://sim", "1/2", real
    )
    deployer.apply(pins, None)
    expected = ["sim stable r/asr:1", "sim canary r/asr:2"] + (["real r/asr:2"] if real_node else [])
    assert calls == expected
    assert deployer.config().get("real_node") == real_node
