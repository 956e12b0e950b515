"""Pulumi ComponentResources, one per reusable unit, registering the manifests builder's plain objects.

Each object becomes the typed pulumi_kubernetes resource of its apiVersion/kind (custom resources:
`apiextensions.CustomResource`), created from the very dict `xzctl render manifests` writes, so the
YAML and the Pulumi resources cannot drift apart. Secrets get their value here, as Pulumi secrets.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from xzctl.manifests.k8s import SECRET_KEY, HelmChart, Obj, Unit
from xzctl.spec.models import Fleet
from xzctl.spec.validate import node_gpu_demand

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


def resource_class(api_version: str, kind: str) -> Any | None:
    """The pulumi_kubernetes class of a built-in kind, or None for a custom resource."""
    group, _, version = api_version.rpartition("/")
    if "." in group and not group.endswith(".k8s.io"):
        return None  # a CRD group such as monitoring.coreos.com
    module = group.split(".")[0] if group else "core"
    try:
        return getattr(importlib.import_module(f"pulumi_kubernetes.{module}.{version}"), kind)
    except (ImportError, AttributeError):
        return None


def register_object(
    obj: Obj, opts: pulumi.ResourceOptions, secret_value: pulumi.Input[str] | None = None
) -> pulumi.CustomResource:
    """One plain Kubernetes object as a Pulumi resource, named <namespace>/<name> like kubectl shows it."""
    meta = obj["metadata"]
    name = f"{meta['namespace']}/{meta['name']}" if "namespace" in meta else meta["name"]
    fields = {_CAMEL.sub("_", k).lower(): v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    if obj["kind"] == "Secret" and secret_value is not None:
        fields["string_data"] = {SECRET_KEY: pulumi.Output.secret(secret_value)}
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
        )
    cls = resource_class(obj["apiVersion"], obj["kind"])
    if cls is None:
        return k8s.apiextensions.CustomResource(
            name, api_version=obj["apiVersion"], kind=obj["kind"], opts=opts, **fields
        )
    resource: pulumi.CustomResource = cls(name, opts=opts, **fields)
    return resource


@dataclass(frozen=True)
class UnitContext:
    """What every unit of one stack shares: the fleet (typed facts such as GPU demand and the endpoint come from
    it, not from the objects' dicts), the component group, the provider and the Secrets' values by name."""

    fleet: Fleet
    group: str
    provider: pulumi.ProviderResource
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    autoscaled: frozenset[str] = frozenset()  # workloads an HPA scales, as Kind/namespace/name


def autoscaled_workloads(objects: Sequence[Obj]) -> frozenset[str]:
    """The workloads the HorizontalPodAutoscalers among `objects` scale, as Kind/namespace/name."""
    return frozenset(
        f"{o['spec']['scaleTargetRef']['kind']}/{o['metadata']['namespace']}/{o['spec']['scaleTargetRef']['name']}"
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
    )


def object_options(obj: Obj, base: pulumi.ResourceOptions, autoscaled: frozenset[str]) -> pulumi.ResourceOptions:
    """`base`, and for a workload an HPA scales, its replicas left to the HPA: without it every `up` would set
    them back to the spec's count (and the next HPA sync up again)."""
    if _describe(obj) not in autoscaled:
        return base
    return pulumi.ResourceOptions.merge(base, pulumi.ResourceOptions(ignore_changes=["spec.replicas"]))


class KubernetesUnit(pulumi.ComponentResource):
    """A unit's objects as child resources. Outputs: `objects` (kind/namespace/name) and `replicas` per workload."""

    key: str
    objects: pulumi.Output[list[str]]
    replicas: pulumi.Output[dict[str, int]]

    def __init__(self, unit: Unit, context: UnitContext, depends_on: Sequence[pulumi.Resource] = ()) -> None:
        super().__init__(
            f"xzctl:{context.group}:{unit.kind}", unit.name, None, pulumi.ResourceOptions(depends_on=list(depends_on))
        )
        self.key = f"{unit.kind}/{unit.name}"
        child = pulumi.ResourceOptions(parent=self, provider=context.provider)
        secrets = context.secrets
        self.children = [
            register_object(
                o,
                object_options(o, child, context.autoscaled),
                secrets.get(o["metadata"]["name"]) if o["kind"] == "Secret" else None,
            )
            for o in unit.objects
        ]
        self.objects = pulumi.Output.from_input([_describe(o) for o in unit.objects])
        self.replicas = pulumi.Output.from_input(
            {o["metadata"]["name"]: int(o["spec"]["replicas"]) for o in unit.objects if o["kind"] in WORKLOAD_KINDS}
        )
        outputs = {"objects": self.objects, "replicas": self.replicas}
        outputs.update(self.extra_outputs(unit, context.fleet))
        self.register_outputs(outputs)

    def extra_outputs(self, _unit: Unit, _fleet: Fleet) -> dict[str, Any]:
        return {}  # the outputs every unit has; EdgeNode and CloudOrchestrator add theirs


def _describe(o: Obj) -> str:
    meta = o["metadata"]
    return "/".join(p for p in (o["kind"], meta.get("namespace"), meta["name"]) if p)


class EdgeNode(KubernetesUnit):
    """The xiaozhi server, inference services (and a coordinator the spec sets) of one edge node. Output: `gpu_requests`."""

    gpu_requests: pulumi.Output[int]

    def extra_outputs(self, unit: Unit, fleet: Fleet) -> dict[str, Any]:
        self.gpu_requests = pulumi.Output.from_input(node_gpu_demand(fleet.node(unit.name)))
        return {"gpu_requests": self.gpu_requests}


class CloudOrchestrator(KubernetesUnit):
    """The LLM router. Output: `endpoint`, the URL edge coordinators call (its Ingress serves it)."""

    endpoint: pulumi.Output[str]

    def extra_outputs(self, _unit: Unit, fleet: Fleet) -> dict[str, Any]:
        self.endpoint = pulumi.Output.from_input(fleet.cloud.endpoint)
        return {"endpoint": self.endpoint}


UNIT_CLASSES: dict[str, type[KubernetesUnit]] = {"EdgeNode": EdgeNode, "CloudOrchestrator": CloudOrchestrator}


def unit_resource(unit: Unit, context: UnitContext, depends_on: Sequence[pulumi.Resource] = ()) -> KubernetesUnit:
    cls = UNIT_CLASSES.get(unit.kind, KubernetesUnit)
    return cls(unit, context, depends_on)


class HelmRelease(pulumi.ComponentResource):
    """A Helm chart (monitoring; the cloud's log stores). Output: `status` of the release."""

    status: pulumi.Output[Any]

    def __init__(
        self,
        chart: HelmChart,
        *,
        group: str,
        provider: pulumi.ProviderResource,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> None:
        super().__init__(
            f"xzctl:{group}:HelmRelease", chart.name, None, pulumi.ResourceOptions(depends_on=list(depends_on))
        )
        # An external chart is installed already: the units that need its CRDs just rely on it.
        external = chart.source == "external"
        self.status = pulumi.Output.from_input("external") if external else _release(chart, self, provider).status
        self.register_outputs({"status": self.status})


def _release(chart: HelmChart, parent: pulumi.Resource, provider: pulumi.ProviderResource) -> Any:
    """The chart from its repository, or from the local directory or .tgz `chart.chart` (no repository, no version)."""
    return k8s.helm.v3.Release(
        chart.name,
        name=chart.name,
        chart=chart.chart,
        version=chart.version if chart.repo else None,
        namespace=chart.namespace,
        values=chart.values,
        # Roll back a failed upgrade instead of leaving the release half-applied.
        atomic=True,
        timeout=900,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo) if chart.repo else None,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )
