"""Region-wide edge objects: NVIDIA time-slicing, NetworkPolicies and the monitoring custom resources."""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from xzctl import service_contract as sc
from xzctl.manifests import k8s
from xzctl.manifests.edge_common import JOB_LABEL, SERVICE_LABEL
from xzctl.manifests.k8s import MONITORING_NAMESPACE, REGION_LABEL, Obj
from xzctl.metrics.contract import EDGE_JOB
from xzctl.spec.models import Region

DEVICE_PLUGIN_NAMESPACE = "kube-system"
DEVICE_PLUGIN_CONFIG = "nvidia-device-plugin-config"


def time_slicing(region: Region) -> list[Obj]:
    """The NVIDIA device plugin's config, one `time-slicing-N` entry per sharing factor the region's nodes use.

    The same ConfigMap, names and format `xzctl bootstrap` installs with the plugin (ansible role
    k3s_server): each GPU node picks its entry by its `nvidia.com/device-plugin.config` label. The stack
    keeps it sized from the spec, so raising time_slicing_replicas needs no re-bootstrap.
    """
    from xzctl.spec.validate import node_gpu_demand

    factors = sorted(
        {
            n.capacity.gpu.time_slicing_replicas
            for n in region.edge_nodes
            if n.capacity.gpu.count and node_gpu_demand(n) > n.capacity.gpu.count
        }
    )
    if not factors or factors == [1]:
        return []
    data = {}
    for replicas in factors:
        sharing = {
            "renameByDefault": False,
            # A service may ask for several slots (the edge LLM's gpu_per_replica 2).
            "failRequestsGreaterThanOne": False,
            "resources": [{"name": "nvidia.com/gpu", "replicas": replicas}],
        }
        data[f"time-slicing-{replicas}"] = yaml.safe_dump(
            {"version": "v1", "sharing": {"timeSlicing": sharing}}, sort_keys=False
        )
    lbls = k8s.labels("gpu-sharing", extra={REGION_LABEL: region.name})
    # Bootstrap created it first: server-side apply takes the fields over instead of failing on "already exists".
    annotations = {"pulumi.com/patchForce": "true"}
    return [k8s.config_map(DEVICE_PLUGIN_CONFIG, DEVICE_PLUGIN_NAMESPACE, lbls, data, annotations)]


def _services(*names: str) -> Obj:
    return {"matchExpressions": [{"key": SERVICE_LABEL, "operator": "In", "values": list(names)}]}


def scraped_services(region: Region) -> list[str]:
    """The region's services whose own /metrics (the contract's path, on their main port) the scrape reads."""
    running = {name for n in region.edge_nodes for name in n.services.inference()}
    return [s for s in ("vad", "asr", "tts", "llm") if s in running and sc.SERVICES[s].metrics_path]


def runs_coordinator(region: Region) -> bool:
    return any(n.services.coordinator is not None for n in region.edge_nodes)


def network_policies(ns: str, service_ports: Mapping[str, int], region: Region) -> list[Obj]:
    """Default deny, then one allow per flow the fleet needs; the coordinator's only where a node runs one."""
    inference = sorted(s for s in ("vad", "asr", "tts", "llm") if s in service_ports)
    # every endpoint of the contract: the server reaches ASR on its FunASR WebSocket port ("ws"), not only "http"
    inference_ports = sorted({e.name for s in inference for e in sc.SERVICES[s].endpoints})
    metrics_ports = sorted({sc.SERVICES[s].main.name for s in scraped_services(region)})
    coordinator = runs_coordinator(region)
    front = ("xiaozhi_server", "coordinator") if coordinator else ("xiaozhi_server",)
    callers = [{"podSelector": _services(*front)}]
    monitoring = k8s.from_namespace(MONITORING_NAMESPACE)
    policies = [
        k8s.network_policy(ns, "default-deny", {}, ingress=[], egress=[]),
        k8s.network_policy(ns, "allow-dns", {}, egress=[k8s.DNS_EGRESS]),
        # Devices come through the ingress controller or straight to the node: any source, two ports only.
        k8s.network_policy(
            ns,
            "allow-devices-to-xiaozhi-server",
            _services("xiaozhi_server"),
            ingress=[{"ports": k8s.tcp_ports(*(e.name for e in sc.XIAOZHI_SERVER.endpoints))}],
        ),
        k8s.network_policy(
            ns,
            "allow-to-inference",
            _services(*inference),
            # the region's Prometheus scrapes each service's own /metrics on its main port
            ingress=[
                {"from": callers, "ports": k8s.tcp_ports(*inference_ports)},
                {"from": [monitoring], "ports": k8s.tcp_ports(*metrics_ports)},
            ],
        ),
        k8s.network_policy(
            ns, "allow-to-cache", _services("cache"), ingress=[{"from": callers, "ports": k8s.tcp_ports("redis")}]
        ),
    ]
    if coordinator:
        policies.append(
            k8s.network_policy(
                ns,
                "allow-to-coordinator",
                _services("coordinator"),
                ingress=[
                    {"from": [{"podSelector": _services("xiaozhi_server")}], "ports": k8s.tcp_ports("http")},
                    {"from": [monitoring], "ports": k8s.tcp_ports("metrics")},
                ],
            )
        )
    callees = (*inference, "cache", "coordinator") if coordinator else (*inference, "cache")
    return [
        *policies,
        k8s.network_policy(
            ns, "allow-calls-in-namespace", _services(*front), egress=[{"to": [{"podSelector": _services(*callees)}]}]
        ),
        # The server calls external LLM/TTS APIs (and a coordinator the cloud router): HTTPS out only.
        k8s.network_policy(ns, "allow-https-out", _services(*front), egress=[{"ports": k8s.tcp_ports(443)}]),
    ]


def scrape_endpoints(region: Region) -> list[Obj]:
    """The ServiceMonitor's endpoints: each service's own metrics port and path (the contract's), kept to the
    services that serve them there, every series labelled with its region and node."""
    interval = min(n.monitoring.metrics_interval_seconds for n in region.edge_nodes)
    service_label = "__meta_kubernetes_service_label_xiaozhi_io_service"
    relabel = [
        {"sourceLabels": ["__meta_kubernetes_service_label_xiaozhi_io_region"], "targetLabel": "region"},
        {"sourceLabels": ["__meta_kubernetes_service_label_xiaozhi_io_edge_node"], "targetLabel": "node"},
    ]
    by_port: dict[tuple[str, str], list[str]] = {}
    for name in scraped_services(region):
        edge = sc.SERVICES[name]
        by_port.setdefault((edge.main.name, str(edge.metrics_path)), []).append(name)
    # a site's own coordinator serves its metrics on a port of their own
    if runs_coordinator(region):
        by_port.setdefault(("metrics", sc.METRICS_PATH), []).append("coordinator")
    return [
        {
            "port": port,
            "path": path,
            "interval": f"{interval}s",
            # a port name alone would also match another service's port of that name (the coordinator's http)
            "relabelings": [
                {"sourceLabels": [service_label], "regex": "|".join(names), "action": "keep"},
                *relabel,
            ],
        }
        for (port, path), names in by_port.items()
    ]


def monitoring(region: Region, ns: str, rule_groups: list[Obj]) -> list[Obj]:
    lbls = k8s.labels("monitoring", extra={REGION_LABEL: region.name})
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": k8s.meta(EDGE_JOB, ns, lbls),
        "spec": {
            "jobLabel": JOB_LABEL,
            "selector": {"matchLabels": {JOB_LABEL: EDGE_JOB}},
            "namespaceSelector": {"matchNames": [ns]},
            "endpoints": scrape_endpoints(region),
        },
    }
    rules = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": k8s.meta(f"{EDGE_JOB}-rules", ns, lbls),
        "spec": {"groups": rule_groups},
    }
    return [monitor, rules]
