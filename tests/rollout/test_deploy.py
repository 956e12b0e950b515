"""The production deployer updates one Pulumi stack per region, only where a step changes pins."""

from __future__ import annotations

from xzctl.manifests.pins import ImagePins, spec_pins
from xzctl.rollout.deploy import StackDeployer
from xzctl.rollout.plan import canary_nodes, plan_steps, promoted_pins, step_pins
from xzctl.spec import Fleet

NEW = "registry.xiaozhi.example/inference/asr:1.2.0"


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
    assert [r for r, _ in updates] == ["beijing", "shanghai", "guangzhou"]
    updates.clear()
    deployer.apply(baseline, None)  # after a crash the live state is unknown: every stack is updated
    assert [r for r, _ in updates] == ["beijing", "shanghai", "guangzhou"]
    assert deployer.current() is None
