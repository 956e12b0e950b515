"""The desired state of every rollout step, computed by the stack program itself under Pulumi mocks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.pulumi_mocks import AUTH_KEY, CONFIG_SECRETS, RecordingMocks, stack_config
from xzctl.images import load_catalog
from xzctl.manifests.pins import ImagePins, spec_pins
from xzctl.provision.automation import PINS_CONFIG
from xzctl.rollout.plan import canary_nodes, plan_steps, promoted_pins, step_pins
from xzctl.spec import Fleet

OLD_TAG = "registry.xiaozhi.example/inference/asr:2.2.0"
NEW_TAG = "registry.xiaozhi.example/inference/asr:1.4.0"
# every step's Deployments pull the image by the lock's digest, the pins name it by tag
OLD, NEW = (load_catalog().by_digest(ref) for ref in (OLD_TAG, NEW_TAG))


def asr_deployments(mocks: RecordingMocks, region: str, pins: ImagePins) -> dict[str, tuple[str, int]]:
    """Deployment name -> (image of its asr container, replicas), for the region's asr Deployments."""
    config = {**stack_config(region), PINS_CONFIG: json.dumps(pins.to_json())}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XIAOZHI_AUTH_KEY", AUTH_KEY)
        recorded = mocks.run(config, list(CONFIG_SECRETS))
    out: dict[str, tuple[str, int]] = {}
    for r in recorded:
        if r.typ != "kubernetes:apps/v1:Deployment":
            continue
        name: str = r.inputs["metadata"]["name"]
        if name.endswith(("-asr", "-asr-canary")):
            containers: list[dict[str, Any]] = r.inputs["spec"]["template"]["spec"]["containers"]
            out[name] = (containers[0]["image"], r.inputs["spec"]["replicas"])
    return out


def test_each_step_deploys_a_canary_beside_stable_only_where_pinned(
    pulumi_mocks: RecordingMocks, example_fleet: Fleet
) -> None:
    baseline = spec_pins(example_fleet)
    steps = plan_steps(example_fleet, "asr")
    replicas = example_fleet.node("bj-edge-01").services.asr.replicas

    assert "@sha256:" in OLD and "@sha256:" in NEW
    first = asr_deployments(pulumi_mocks, "beijing", step_pins(baseline, "asr", NEW_TAG, canary_nodes(steps, 0)))
    assert first == {
        "bj-edge-01-asr": (OLD, replicas),
        "bj-edge-01-asr-canary": (NEW, 1),
        "bj-edge-02-asr": (OLD, replicas),
        "bj-edge-03-asr": (OLD, replicas),
    }
    second = asr_deployments(pulumi_mocks, "beijing", step_pins(baseline, "asr", NEW_TAG, canary_nodes(steps, 1)))
    assert {n for n, (image, _) in second.items() if image == NEW} == {
        "bj-edge-01-asr-canary",
        "bj-edge-02-asr-canary",
        "bj-edge-03-asr-canary",
    }
    # step 2 touches Beijing only: Shanghai's desired state is still the spec's
    shanghai = asr_deployments(pulumi_mocks, "shanghai", step_pins(baseline, "asr", NEW_TAG, canary_nodes(steps, 1)))
    assert shanghai == {"sh-edge-01-asr": (OLD, replicas), "sh-edge-02-asr": (OLD, replicas)}

    final = promoted_pins(baseline, "asr", NEW_TAG, canary_nodes(steps, len(steps) - 1))
    assert asr_deployments(pulumi_mocks, "guangzhou", final) == {
        "gz-edge-01-asr": (NEW, replicas),
        "gz-edge-02-asr": (NEW, replicas),
    }
    # a rollback applies the baseline: the canary Deployments are gone, stable is the old image
    assert set(asr_deployments(pulumi_mocks, "beijing", baseline).values()) == {(OLD, replicas)}
