"""What the stacks run, read back from the file backend's checkpoints (the Pulumi deployer's baseline)."""

from __future__ import annotations

import json
from pathlib import Path

from xzctl.manifests.pins import ImagePins, ServicePin, spec_pins
from xzctl.provision.backend import DEPLOYMENT, backend_dir, pins_of_deployments, stack_pins
from xzctl.provision.objects import target_objects
from xzctl.spec import Fleet

OLD = "registry.xiaozhi.example/inference/asr:2.2.0"
NEW = "registry.xiaozhi.example/inference/asr:1.4.0"


def _beijing(pins: ImagePins, fleet: Fleet) -> dict[str, dict[str, ServicePin]]:
    return {n.id: pins.nodes[n.id] for n in fleet.regions["beijing"].edge_nodes}


def test_the_pins_of_the_rendered_deployments_are_the_pins_they_were_rendered_from(example_fleet: Fleet) -> None:
    pins = spec_pins(example_fleet).with_pin("bj-edge-01", "asr", ServicePin(OLD, NEW))
    pins = pins.with_pin("bj-edge-02", "asr", ServicePin(NEW))
    objects = target_objects(example_fleet, "beijing", pins).objects()
    assert pins_of_deployments(objects).nodes == _beijing(pins, example_fleet)


def test_stack_pins_are_what_each_stack_last_applied_else_the_spec(example_fleet: Fleet, tmp_path: Path) -> None:
    spec = spec_pins(example_fleet)
    stacks = list(example_fleet.regions)
    assert stack_pins(example_fleet, stacks, tmp_path).nodes == spec.nodes  # no stack applied yet
    promoted = spec.with_pin("bj-edge-01", "asr", ServicePin(NEW)).with_pin("bj-edge-02", "asr", ServicePin(OLD, NEW))
    resources = [{"type": "pulumi:pulumi:Stack", "inputs": {}}]
    resources += [
        {"type": DEPLOYMENT, "inputs": obj} for obj in target_objects(example_fleet, "beijing", promoted).objects()
    ]
    folder = backend_dir(tmp_path) / ".pulumi" / "stacks" / "xzctl"
    folder.mkdir(parents=True)
    (folder / "edge-beijing.json").write_text(json.dumps({"checkpoint": {"latest": {"resources": resources}}}))
    got = stack_pins(example_fleet, stacks, tmp_path)
    assert _beijing(got, example_fleet) == _beijing(promoted, example_fleet)
    assert got.nodes == promoted.nodes  # the other regions: the spec's images
