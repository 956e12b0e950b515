"""The Pulumi program: edge regions and the cloud cluster from the typed fleet spec.

Two entry points build the same resources:
- `inline_program(fleet, target, pins, objects)`: what `xzctl provision` (the Automation API) runs, closed
  over the fleet and objects it already loaded and checked; nothing is read or parsed again.
- `program()`: what `pulumi up` runs through stacks/__main__.py, reading the stack config that
  xzctl.provision.stack_config lists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from xzctl.errors import BadInputError
from xzctl.manifests.pins import ImagePins
from xzctl.provision.components import (
    HelmRelease,
    KubernetesUnit,
    UnitContext,
    autoscaled_workloads,
    resource_class,
    unit_resource,
)
from xzctl.provision.objects import CLOUD, TargetObjects, target_objects
from xzctl.provision.stack_config import (
    CLOUD_STACK,
    FLEET,
    IMAGE_PINS,
    KUBE_CONTEXT,
    KUBECONFIG,
    NAMESPACE,
    REGION,
    qualified,
)
from xzctl.spec import load_fleet
from xzctl.spec.models import Fleet, KubernetesTarget, SecretRef

DEFAULT_CLOUD_STACK = "organization/xzctl/cloud"
CLOUD_ENDPOINT_OUTPUT = "cloudEndpoint"


def program() -> None:
    cfg = pulumi.Config(NAMESPACE)
    fleet = load_fleet(cfg.require(FLEET)).fleet
    build(fleet, cfg.require(REGION), parse_pins(cfg.get(IMAGE_PINS)), cfg)


def inline_program(
    fleet: Fleet, target: str, pins: ImagePins | None, objects: TargetObjects | None = None
) -> Callable[[], None]:
    """The program for the Automation API, over objects already built (`objects`: `target_objects(fleet, target,
    pins)`, so the cloud is not built twice; an edge region rebuilds its units with the cloud stack's endpoint)."""

    def run() -> None:
        build(fleet, target, pins, pulumi.Config(NAMESPACE), objects)

    return run


def parse_pins(text: str | None) -> ImagePins | None:
    if not text:
        return None
    try:
        return ImagePins.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(f"stack config {qualified(IMAGE_PINS)} is not valid image pins JSON: {exc}") from None


def secret_inputs(secrets: Mapping[str, SecretRef], cfg: pulumi.Config) -> dict[str, pulumi.Input[str]]:
    """Every secret's value, resolved before any resource is registered: a missing one fails the whole run."""
    values: dict[str, pulumi.Input[str]] = {}
    missing = []
    for name, ref in secrets.items():
        if ref.env:
            value = os.environ.get(ref.env)
            if value:
                values[name] = pulumi.Output.secret(value)
            else:
                missing.append(f"{name} needs environment variable {ref.env}")
        else:
            key = ref.pulumi_secret or ""
            secret = cfg.get_secret(key)
            if secret is None:
                missing.append(f"{name} needs Pulumi config secret {qualified(key)}")
            else:
                values[name] = secret
    if missing:
        raise BadInputError(
            "secrets are not set: " + "; ".join(missing),
            hint=f"export the variables; a Pulumi secret fooBar: export XZCTL_SECRET_FOO_BAR for xzctl provision, "
            f"or `pulumi config set --secret {qualified('fooBar')} VALUE` on the stack",
        )
    return values


def provider(name: str, target: KubernetesTarget, cfg: pulumi.Config) -> k8s.Provider:
    return k8s.Provider(
        name,
        context=cfg.get(KUBE_CONTEXT) or target.context,
        kubeconfig=cfg.get(KUBECONFIG) or target.kubeconfig,
    )


def build(
    fleet: Fleet, target: str, pins: ImagePins | None, cfg: pulumi.Config, objects: TargetObjects | None = None
) -> list[KubernetesUnit]:
    """Register the target's units; return them (tests and the Automation API read their outputs)."""
    if target != CLOUD and target not in fleet.regions:
        raise BadInputError(f"stack config {qualified(REGION)} {target!r} is not a region of the fleet or 'cloud'")
    objects = objects or target_objects(fleet, target, pins)
    # Secrets first: a missing one fails the run before anything, the StackReference included, is registered.
    secrets = secret_inputs(objects.secrets, cfg)
    if target == CLOUD:
        kube, group = fleet.cloud.kubernetes, "cloud"
    else:
        kube, group = fleet.regions[target].kubernetes, "edge"
        ref = pulumi.StackReference(cfg.get(CLOUD_STACK) or DEFAULT_CLOUD_STACK)
        objects = target_objects(fleet, target, pins, ref.require_output(CLOUD_ENDPOINT_OUTPUT))
    k8s_provider = provider(f"{group}-{target}", kube, cfg)
    base, *rest = objects.units
    context = UnitContext(
        fleet=fleet,
        group=group,
        provider=k8s_provider,
        secrets=secrets,
        autoscaled=autoscaled_workloads(objects.objects()),
    )
    first = unit_resource(base, context)
    releases = [HelmRelease(c, group=group, provider=k8s_provider, depends_on=[first]) for c in objects.charts]
    units = [first]
    for unit in rest:
        # Custom resources need the CRDs the charts install, and the log job the Elasticsearch they run.
        needs_charts = unit.kind == "CloudLogging" or any(
            resource_class(o["apiVersion"], o["kind"]) is None for o in unit.objects
        )
        after: list[pulumi.Resource] = [first, *releases] if needs_charts else [first]
        units.append(unit_resource(unit, context, depends_on=after))
    export(objects, units)
    return units


def resource_count(objects: TargetObjects) -> int:
    """How many resources `build` registers for `objects`: the stack, the provider, each unit and object, each
    chart's component and release (none for an external chart), and an edge stack's reference to the cloud stack (progress shows done/total)."""
    edge = 0 if objects.target == CLOUD else 1
    releases = sum(c.source != "external" for c in objects.charts)
    return 2 + len(objects.units) + len(objects.objects()) + len(objects.charts) + releases + edge


def export(objects: TargetObjects, units: list[KubernetesUnit]) -> None:
    pulumi.export("target", objects.target)
    pulumi.export("namespace", objects.namespace)
    pulumi.export("objects", len(objects.objects()))
    replicas: dict[str, Any] = {u.key: u.replicas for u in units}
    pulumi.export("replicas", replicas)
    for unit in units:
        endpoint = getattr(unit, "endpoint", None)
        if endpoint is not None:
            pulumi.export(CLOUD_ENDPOINT_OUTPUT, endpoint)
