"""The Kubernetes objects of one edge region (one K3s cluster), grouped into reusable units.

Per edge node: the xiaozhi server, vad/asr/tts(/llm), a coordinator where the spec sets one (unit EdgeNode)
and the Redis L2 cache (unit EdgeCache). Per region: namespace and secrets (RegionBase), NVIDIA time-slicing
(GpuSharing), NetworkPolicies, and monitoring custom resources (RegionMonitoring).

What other blocks render (node documents, alert rules) arrives as `RegionInputs`: the layering keeps
the manifests builder independent of the renderer, and `xzctl.provision.objects` joins them.
`cloud_endpoint` is the cloud stack's output in Pulumi and the spec's endpoint in plain YAML.
The per-node builder is `edge_node`, the region-wide objects `edge_region`, what they share `edge_common`.
"""

from __future__ import annotations

from typing import Any

from xzctl.errors import NotFoundError
from xzctl.manifests import k8s
from xzctl.manifests.autoscaling import adapter_chart, edge_autoscalers
from xzctl.manifests.cloud_data import OBJECT_STORE_CLAIMS
from xzctl.manifests.edge_common import RegionInputs, labels
from xzctl.manifests.edge_node import NodeBuilder
from xzctl.manifests.edge_region import monitoring, network_policies, time_slicing
from xzctl.manifests.k8s import MONITORING_NAMESPACE, SECRET_KEY, HelmChart, Obj, Unit, secret_name
from xzctl.manifests.pins import ImagePins, spec_pins
from xzctl.spec.models import Fleet, Region, SecretRef

# RegionInputs is imported from here by the provisioning layer.
__all__ = [
    "RegionInputs",
    "edge_helm_charts",
    "edge_region_objects",
    "edge_region_units",
    "region_of",
    "region_secrets",
    "volume_claims",
]


def region_of(fleet: Fleet, name: str) -> Region:
    try:
        return fleet.regions[name]
    except KeyError:
        known = ", ".join(sorted(fleet.regions))
        raise NotFoundError(f"no region {name!r} in the fleet spec", hint=f"regions: {known}") from None


def edge_region_units(
    fleet: Fleet, region_name: str, inputs: RegionInputs, pins: ImagePins | None = None, cloud_endpoint: Any = None
) -> list[Unit]:
    region = region_of(fleet, region_name)
    pins = pins or spec_pins(fleet)
    endpoint = cloud_endpoint if cloud_endpoint is not None else fleet.cloud.endpoint
    ns = region.kubernetes.namespace
    units = [Unit("RegionBase", region.name, _region_base(fleet, ns, inputs))]
    sharing = time_slicing(region)
    if sharing:
        units.append(Unit("GpuSharing", region.name, sharing))
    for node in region.edge_nodes:
        builder = NodeBuilder(fleet, node, ns, pins, inputs)
        units.append(Unit("EdgeNode", node.id, builder.objects(endpoint)))
        units.append(Unit("EdgeCache", node.id, builder.cache()))
    units.append(Unit("NetworkPolicies", region.name, network_policies(ns, inputs.service_ports, region)))
    units.append(Unit("RegionMonitoring", region.name, monitoring(region, ns, inputs.rule_groups)))
    if autoscalers := edge_autoscalers(fleet, region.name, ns, labels):
        units.append(Unit("Autoscaling", region.name, autoscalers))
    return units


def edge_region_objects(
    fleet: Fleet, region_name: str, inputs: RegionInputs, pins: ImagePins | None = None, cloud_endpoint: Any = None
) -> list[Obj]:
    return [o for u in edge_region_units(fleet, region_name, inputs, pins, cloud_endpoint) for o in u.objects]


def edge_helm_charts(fleet: Fleet, region_name: str) -> list[HelmChart]:
    """The region's own Prometheus (kube-prometheus-stack): it runs the ServiceMonitor and PrometheusRule.

    Series carry the region as an external label; dashboards stay in the cloud's Grafana.
    """
    region = region_of(fleet, region_name)
    interval = min(n.monitoring.metrics_interval_seconds for n in region.edge_nodes)
    return [
        k8s.monitoring_chart(
            retention_days=fleet.cloud.monitoring.retention_days,
            prometheus=True,
            alertmanager=any(n.monitoring.alerts_enabled for n in region.edge_nodes),
            grafana=False,
            extra={"externalLabels": {"region": region.name}, "scrapeInterval": f"{interval}s"},
        ),
        *adapter_chart(fleet),
    ]


def volume_claims(fleet: Fleet) -> int:
    """The persistent volume claims the fleet's objects make: per edge node its models and, when its cache persists,
    the cache's data; the cloud's object store one. The sandbox makes a volume for each."""
    return sum(1 + int(n.services.cache.persistence) for n in fleet.edge_nodes()) + OBJECT_STORE_CLAIMS


def region_secrets(fleet: Fleet, inputs: RegionInputs) -> dict[str, SecretRef]:
    """Spec secret field -> reference, for every secret an edge region's pods read."""
    wanted = {*inputs.secret_envs, "redis_password"}
    return {f: ref for f in sorted(wanted) if (ref := getattr(fleet.secrets, f)) is not None}


def _region_base(fleet: Fleet, ns: str, inputs: RegionInputs) -> list[Obj]:
    out = [k8s.namespace(ns), k8s.namespace(MONITORING_NAMESPACE, "privileged")]
    for field, ref in region_secrets(fleet, inputs).items():
        out.append(k8s.secret_ref_object(secret_name(field), ns, SECRET_KEY, ref.describe(), f"secrets.{field}"))
    return out
