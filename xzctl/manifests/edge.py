"""The Kubernetes objects of one edge region (one K3s cluster), grouped into reusable units.

Per edge node: the xiaozhi server, vad/asr/tts(/llm), the edge coordinator (unit EdgeNode) and its
Redis L2 cache (unit EdgeCache). Per region: namespace and secrets (RegionBase), NVIDIA time-slicing
(GpuSharing), NetworkPolicies, and monitoring custom resources (RegionMonitoring).

What other blocks render (node documents, alert rules) arrives as `RegionInputs`: the layering keeps
the manifests builder independent of the renderer, and `xzctl.provision.objects` joins them.
`cloud_endpoint` is the cloud stack's output in Pulumi and the spec's endpoint in plain YAML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from xzctl.errors import NotFoundError
from xzctl.manifests import k8s
from xzctl.manifests.autoscaling import adapter_chart, edge_autoscalers
from xzctl.manifests.k8s import (
    GPU_COUNT_ANNOTATION,
    GPU_SHARING_ANNOTATION,
    MONITORING_NAMESPACE,
    NODE_LABEL,
    REGION_LABEL,
    SECRET_KEY,
    TRACK_LABEL,
    HelmChart,
    Obj,
    Unit,
    secret_name,
)
from xzctl.manifests.pins import ImagePins, spec_pins
from xzctl.metrics.contract import EDGE_JOB
from xzctl.spec.models import EdgeNode, Fleet, InferenceService, Region, Resources, SecretRef

SERVICE_LABEL = "xiaozhi.io/service"
JOB_LABEL = "xiaozhi.io/job"
DEVICE_PLUGIN_NAMESPACE = "kube-system"
DEVICE_PLUGIN_CONFIG = "nvidia-device-plugin-config"
SERVER_HOME = "/opt/xiaozhi-esp32-server"
SENSEVOICE_MODEL = "models/SenseVoiceSmall/model.pt"
METRICS_PORT = 9090
NODE_CONFIG_KEY = "node.yaml"
SERVER_CONFIG_KEY = "server.config.yaml"

PodFor = Callable[[str, str], Obj]


@dataclass(frozen=True)
class RegionInputs:
    """What the renderer and the alert rules give the builder for one region."""

    node_files: Mapping[str, tuple[str, str]]  # edge node id -> (node.yaml, xiaozhi server override)
    secret_envs: Mapping[str, str]  # spec secret field -> env var its placeholder in the override names
    fill_secrets_script: str  # python -c SCRIPT SRC DEST: fills the placeholders from the env
    service_ports: Mapping[str, int]  # service -> in-cluster port (vad, asr, tts, llm, cache, coordinator)
    rule_groups: list[Obj]


def region_of(fleet: Fleet, name: str) -> Region:
    try:
        return fleet.regions[name]
    except KeyError:
        known = ", ".join(sorted(fleet.regions))
        raise NotFoundError(f"no region {name!r} in the fleet spec", hint=f"regions: {known}") from None


def k8s_name(service: str) -> str:
    return service.replace("_", "-")


def edge_region_units(
    fleet: Fleet, region_name: str, inputs: RegionInputs, pins: ImagePins | None = None, cloud_endpoint: Any = None
) -> list[Unit]:
    region = region_of(fleet, region_name)
    pins = pins or spec_pins(fleet)
    endpoint = cloud_endpoint if cloud_endpoint is not None else fleet.cloud.endpoint
    ns = region.kubernetes.namespace
    units = [Unit("RegionBase", region.name, _region_base(fleet, ns, inputs))]
    sharing = _time_slicing(region)
    if sharing:
        units.append(Unit("GpuSharing", region.name, sharing))
    for node in region.edge_nodes:
        builder = _NodeBuilder(fleet, node, ns, pins, inputs)
        units.append(Unit("EdgeNode", node.id, builder.objects(endpoint)))
        units.append(Unit("EdgeCache", node.id, builder.cache()))
    units.append(Unit("NetworkPolicies", region.name, _network_policies(ns, inputs.service_ports)))
    units.append(Unit("RegionMonitoring", region.name, _monitoring(region, ns, inputs.rule_groups)))
    if autoscalers := edge_autoscalers(fleet, region.name, ns, _labels):
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


def region_secrets(fleet: Fleet, inputs: RegionInputs) -> dict[str, SecretRef]:
    """Spec secret field -> reference, for every secret an edge region's pods read."""
    wanted = {*inputs.secret_envs, "redis_password"}
    return {f: ref for f in sorted(wanted) if (ref := getattr(fleet.secrets, f)) is not None}


def _region_base(fleet: Fleet, ns: str, inputs: RegionInputs) -> list[Obj]:
    out = [k8s.namespace(ns), k8s.namespace(MONITORING_NAMESPACE, "privileged")]
    for field, ref in region_secrets(fleet, inputs).items():
        out.append(k8s.secret_ref_object(secret_name(field), ns, SECRET_KEY, ref.describe(), f"secrets.{field}"))
    return out


def _labels(node: EdgeNode, service: str, track: str | None = None) -> dict[str, str]:
    extra = {REGION_LABEL: node.region, NODE_LABEL: node.id, SERVICE_LABEL: service}
    if track:
        extra[TRACK_LABEL] = track
    return k8s.labels(k8s_name(service), extra=extra)


def _selector(node: EdgeNode, service: str, track: str | None = None) -> dict[str, str]:
    sel = {NODE_LABEL: node.id, SERVICE_LABEL: service}
    if track:
        sel[TRACK_LABEL] = track
    return sel


def _common_env(node: EdgeNode, service: str, track: str, image: str) -> list[Obj]:
    # The metrics contract labels every series with region, node, track and image.
    values = {"XIAOZHI_REGION": node.region, "XIAOZHI_NODE": node.id, "XIAOZHI_SERVICE": service}
    return _env(values | {"XIAOZHI_TRACK": track, "XIAOZHI_IMAGE": image})


def _env(values: Mapping[str, Any]) -> list[Obj]:
    return [{"name": k, "value": str(v).lower() if isinstance(v, bool) else str(v)} for k, v in values.items()]


class _NodeBuilder:
    """The objects of one edge node; a class only to share the node's context between workloads."""

    def __init__(self, fleet: Fleet, node: EdgeNode, ns: str, pins: ImagePins, inputs: RegionInputs) -> None:
        self.fleet, self.node, self.ns, self.pins, self.inputs = fleet, node, ns, pins, inputs
        self.ports = inputs.service_ports
        self.config_name = f"{node.id}-config"
        self.has_redis_password = fleet.secrets.redis_password is not None

    def name(self, service: str) -> str:
        return f"{self.node.id}-{k8s_name(service)}"

    def objects(self, endpoint: Any) -> list[Obj]:
        node, s = self.node, self.node.services
        try:
            node_yaml, server_config = self.inputs.node_files[node.id]
        except KeyError:
            raise NotFoundError(f"no rendered documents for edge node {node.id}") from None
        out = [
            k8s.config_map(
                self.config_name,
                self.ns,
                _labels(node, "config"),
                {NODE_CONFIG_KEY: node_yaml, SERVER_CONFIG_KEY: server_config},
                {
                    GPU_COUNT_ANNOTATION: str(node.capacity.gpu.count),
                    GPU_SHARING_ANNOTATION: str(node.capacity.gpu.time_slicing_replicas),
                },
            ),
            # The SenseVoice model file is not in the server image; `xzctl bootstrap` copies it here.
            k8s.pvc(self.name("models"), self.ns, _labels(node, "models"), "5Gi"),
        ]
        srv = s.xiaozhi_server
        out += self.workload(
            "xiaozhi_server", srv.replicas, self.server_pod, [("ws", srv.port), ("http", srv.http_port)]
        )
        for name, svc in s.inference().items():
            out += self.workload(name, svc.replicas, self.inference_pod(name, svc), [("http", self.ports[name])])
        coordinator_ports = [("http", self.ports["coordinator"]), ("metrics", METRICS_PORT)]
        # The coordinator Service is the edge node's one scrape target (job xiaozhi-edge).
        scrape = {JOB_LABEL: EDGE_JOB}
        pod = self.coordinator_pod(endpoint)
        out += self.workload("coordinator", s.coordinator.replicas, pod, coordinator_ports, scrape)
        out.append(self.ingress())
        return out

    def tracks(self, service: str, replicas: int) -> list[tuple[str, str, int]]:
        """(track, image, replicas): the stable Deployment and, when pinned, a 1-replica canary beside it."""
        try:
            pin = self.pins.get(self.node.id, service)
        except KeyError:
            raise NotFoundError(f"image pins have no {service} for edge node {self.node.id}") from None
        what = f"{self.node.id} {service}"
        out = [("stable", k8s.check_image(self.fleet, pin.stable, what), replicas)]
        if pin.canary:
            out.append(("canary", k8s.check_image(self.fleet, pin.canary, what + " canary"), 1))
        return out

    def workload(
        self,
        service: str,
        replicas: int,
        pod_for: PodFor,
        ports: list[tuple[str, int]],
        service_labels: dict[str, str] | None = None,
    ) -> list[Obj]:
        """Deployments per track, the Service over both tracks, the PDB over the stable track."""
        node, base = self.node, self.name(service)
        out: list[Obj] = []
        for track, image, count in self.tracks(service, replicas):
            name = base if track == "stable" else f"{base}-canary"
            sel = _selector(node, service, track)
            lbls = _labels(node, service, track)
            out.append(k8s.deployment(name, self.ns, lbls, sel, replicas=count, pod=pod_for(image, track)))
        svc_labels = {**_labels(node, service), **(service_labels or {})}
        out.append(k8s.service(base, self.ns, svc_labels, _selector(node, service), ports))
        out += k8s.pdb(base, self.ns, _labels(node, service), _selector(node, service, "stable"), replicas)
        return out

    def server_pod(self, image: str, track: str) -> Obj:
        srv, data = self.node.services.xiaozhi_server, f"{SERVER_HOME}/data"
        secret_env = [
            k8s.secret_env(env, secret_name(field), SECRET_KEY)
            for field, env in sorted(self.inputs.secret_envs.items())
        ]
        # Fills the override's secret placeholders into an in-memory volume: the keys never touch a ConfigMap.
        script = self.inputs.fill_secrets_script
        fill = k8s.container(
            "fill-secrets",
            image,
            k8s.resources(Resources(cpu_request="50m", cpu_limit="200m", memory_request="64Mi", memory_limit="128Mi")),
            command=["python3", "-c", script, f"/config/{SERVER_CONFIG_KEY}", f"{data}/.config.yaml"],
            env=secret_env,
            mounts=[{"name": "config", "mountPath": "/config", "readOnly": True}, {"name": "data", "mountPath": data}],
        )
        main = k8s.container(
            "xiaozhi-server",
            image,
            k8s.resources(srv.resources),
            ports=[("ws", srv.port), ("http", srv.http_port)],
            # The upstream server's only health signal: GET / on the WebSocket port answers 200.
            readiness=k8s.http_probe("/", "ws", period=5),
            liveness=k8s.http_probe("/", "ws", period=20, delay=30),
            env=[{"name": "TZ", "value": "UTC"}, *_common_env(self.node, "xiaozhi_server", track, image)],
            mounts=[
                {"name": "data", "mountPath": data},
                {"name": "tmp", "mountPath": f"{SERVER_HOME}/tmp"},
                {"name": "scratch", "mountPath": "/tmp"},
                {
                    "name": "models",
                    "mountPath": f"{SERVER_HOME}/{SENSEVOICE_MODEL}",
                    "subPath": "SenseVoiceSmall/model.pt",
                    "readOnly": True,
                },
            ],
        )
        volumes = [
            {
                "name": "config",
                "configMap": {
                    "name": self.config_name,
                    "items": [{"key": SERVER_CONFIG_KEY, "path": SERVER_CONFIG_KEY}],
                },
            },
            {"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            k8s.empty_dir("tmp", "10Gi"),
            k8s.empty_dir("scratch"),
            {"name": "models", "persistentVolumeClaim": {"claimName": self.name("models"), "readOnly": True}},
        ]
        return k8s.pod_spec([main], node_selector=self.pinned(), volumes=volumes, init_containers=[fill])

    def pinned(self) -> dict[str, str]:
        return {NODE_LABEL: self.node.id}

    def inference_pod(self, name: str, svc: InferenceService) -> PodFor:
        gpus = {"nvidia.com/gpu": str(svc.gpu_per_replica)} if svc.gpu_per_replica else None
        port = self.ports[name]
        values: dict[str, Any] = {"MODEL": svc.model, "BATCH_SIZE": svc.batch_size, "PORT": port}
        streaming = getattr(svc, "streaming", None)
        if streaming is not None:
            values |= {
                "STREAMING": streaming.enabled,
                "CHUNK_SAMPLES": streaming.chunk_samples,
                "OVERLAP_SAMPLES": streaming.overlap_samples,
                "SAMPLE_RATE": streaming.sample_rate,
            }
        cache = getattr(svc, "cache_size", None)
        if cache:
            values |= {"CACHE_DIR": "/cache", "CACHE_SIZE": cache, "FALLBACK_VOICE": getattr(svc, "fallback_voice", "")}

        def pod(image: str, track: str) -> Obj:
            mounts = [{"name": "tmp", "mountPath": "/tmp"}]
            volumes = [k8s.empty_dir("tmp", "2Gi")]
            if cache:
                mounts.append({"name": "cache", "mountPath": "/cache"})
                volumes.append(k8s.empty_dir("cache", cache))
            main = k8s.container(
                name,
                image,
                k8s.resources(svc.resources, gpus),
                ports=[("http", port)],
                readiness=k8s.http_probe("/healthz", "http", period=5),
                # Loading a model takes time: liveness waits for it rather than killing a loading pod.
                liveness=k8s.http_probe("/healthz", "http", period=20, delay=60),
                env=[*_common_env(self.node, name, track, image), *_env(values)],
                mounts=mounts,
            )
            return k8s.pod_spec([main], node_selector=self.pinned(), volumes=volumes)

        return pod

    def coordinator_pod(self, endpoint: Any) -> PodFor:
        node, tiers = self.node, self.fleet.cache_tiers
        values = {
            "EDGE_CONFIG": f"/etc/edge-config/{NODE_CONFIG_KEY}",
            "REDIS_URL": f"redis://{self.name('cache')}:{self.ports['cache']}/0",
            "L1_MAX_ENTRIES": tiers.l1.max_entries,
            "L2_TTL_SECONDS": tiers.l2.ttl_seconds,
            "L3_TTL_SECONDS": tiers.l3.ttl_seconds,
            "L3_BUCKET": tiers.l3.bucket,
            "LOG_LEVEL": node.monitoring.log_level,
            "METRICS_PORT": METRICS_PORT,
        }

        def pod(image: str, track: str) -> Obj:
            env: list[Obj] = [
                {"name": "NODE_ID", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "CLOUD_ENDPOINT", "value": endpoint},
                *_env(values),
                *_common_env(node, "coordinator", track, image),
            ]
            if self.has_redis_password:
                env.append(k8s.secret_env("REDIS_PASSWORD", secret_name("redis_password"), SECRET_KEY))
            main = k8s.container(
                "coordinator",
                image,
                k8s.resources(node.services.coordinator.resources),
                ports=[("http", self.ports["coordinator"]), ("metrics", METRICS_PORT)],
                readiness=k8s.http_probe("/healthz", "http", period=5),
                liveness=k8s.http_probe("/healthz", "http", period=20, delay=15),
                env=env,
                mounts=[
                    {"name": "config", "mountPath": "/etc/edge-config", "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            )
            volumes = [
                {
                    "name": "config",
                    "configMap": {
                        "name": self.config_name,
                        "items": [{"key": NODE_CONFIG_KEY, "path": NODE_CONFIG_KEY}],
                    },
                },
                k8s.empty_dir("tmp"),
            ]
            return k8s.pod_spec([main], node_selector=self.pinned(), volumes=volumes)

        return pod

    def ingress(self) -> Obj:
        node, srv = self.node, self.node.services.xiaozhi_server
        backend = self.name("xiaozhi_server")

        def path(prefix: str, port: str) -> Obj:
            return {
                "path": prefix,
                "pathType": "Prefix",
                "backend": {"service": {"name": backend, "port": {"name": port}}},
            }

        paths = [path("/xiaozhi/v1/", "ws"), path("/xiaozhi/ota/", "http"), path("/mcp/", "http")]
        spec: Obj = {"rules": [{"host": node.public_hostname, "http": {"paths": paths}}]}
        if srv.websocket_scheme == "wss":
            # The certificate (cert-manager or by hand) is expected in this Secret.
            spec["tls"] = [{"hosts": [node.public_hostname], "secretName": f"{node.id}-tls"}]
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": k8s.meta(backend, self.ns, _labels(node, "xiaozhi_server")),
            "spec": spec,
        }

    def cache(self) -> list[Obj]:
        from xzctl.spec.quantity import parse_memory

        node, cache, port = self.node, self.node.services.cache, self.ports["cache"]
        name, lbls, sel = self.name("cache"), _labels(node, "cache"), _selector(node, "cache")
        # maxmemory under the container limit leaves room for Redis' own overhead: eviction acts, not the OOM killer.
        args = ["--maxmemory", str(int(parse_memory(cache.memory_limit) * 0.85)), "--maxmemory-policy", "allkeys-lru"]
        args += ["--appendonly", "yes" if cache.persistence else "no", "--port", str(port)]
        env: list[Obj] = []
        if self.has_redis_password:
            args += ["--requirepass", "$(REDIS_PASSWORD)"]
            secret = secret_name("redis_password")
            env = [
                k8s.secret_env("REDIS_PASSWORD", secret, SECRET_KEY),
                k8s.secret_env("REDISCLI_AUTH", secret, SECRET_KEY),
            ]
        ping = {"exec": {"command": ["sh", "-c", f"redis-cli -p {port} ping | grep -q PONG"]}}
        limits = Resources(
            cpu_request="500m", cpu_limit="2", memory_request=cache.memory_limit, memory_limit=cache.memory_limit
        )
        main = k8s.container(
            "redis",
            k8s.check_image(self.fleet, cache.image, f"{node.id} cache"),
            k8s.resources(limits),
            ports=[("redis", port)],
            readiness={**ping, "periodSeconds": 5},
            liveness={**ping, "periodSeconds": 20, "initialDelaySeconds": 15},
            command=["redis-server"],
            args=args,
            env=env,
            mounts=[{"name": "data", "mountPath": "/data"}],
        )
        volumes = None if cache.persistence else [k8s.empty_dir("data", cache.storage_size)]
        pod = k8s.pod_spec([main], node_selector=self.pinned(), volumes=volumes)
        spec: Obj = {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": sel},
            "template": {"metadata": {"labels": lbls}, "spec": pod},
        }
        if cache.persistence:
            claim = k8s.pvc("data", self.ns, lbls, cache.storage_size)
            spec["volumeClaimTemplates"] = [{"metadata": {"name": "data", "labels": lbls}, "spec": claim["spec"]}]
        sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": k8s.meta(name, self.ns, lbls), "spec": spec}
        return [sts, k8s.service(name, self.ns, lbls, sel, [("redis", port)])]


def _time_slicing(region: Region) -> list[Obj]:
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


def _network_policies(ns: str, service_ports: Mapping[str, int]) -> list[Obj]:
    """Default deny, then one allow per flow the fleet needs."""
    inference = sorted(s for s in ("vad", "asr", "tts", "llm") if s in service_ports)
    callers = [{"podSelector": _services("xiaozhi_server", "coordinator")}]
    monitoring = k8s.from_namespace(MONITORING_NAMESPACE)
    return [
        k8s.network_policy(ns, "default-deny", {}, ingress=[], egress=[]),
        k8s.network_policy(ns, "allow-dns", {}, egress=[k8s.DNS_EGRESS]),
        # Devices come through the ingress controller or straight to the node: any source, two ports only.
        k8s.network_policy(
            ns,
            "allow-devices-to-xiaozhi-server",
            _services("xiaozhi_server"),
            ingress=[{"ports": k8s.tcp_ports("ws", "http")}],
        ),
        k8s.network_policy(
            ns, "allow-to-inference", _services(*inference), ingress=[{"from": callers, "ports": k8s.tcp_ports("http")}]
        ),
        k8s.network_policy(
            ns, "allow-to-cache", _services("cache"), ingress=[{"from": callers, "ports": k8s.tcp_ports("redis")}]
        ),
        k8s.network_policy(
            ns,
            "allow-to-coordinator",
            _services("coordinator"),
            ingress=[
                {"from": [{"podSelector": _services("xiaozhi_server")}], "ports": k8s.tcp_ports("http")},
                {"from": [monitoring], "ports": k8s.tcp_ports("metrics")},
            ],
        ),
        k8s.network_policy(
            ns,
            "allow-calls-in-namespace",
            _services("xiaozhi_server", "coordinator"),
            egress=[{"to": [{"podSelector": _services(*inference, "cache", "coordinator")}]}],
        ),
        # The server calls external LLM/TTS APIs and the coordinator the cloud router: HTTPS out only.
        k8s.network_policy(
            ns, "allow-https-out", _services("xiaozhi_server", "coordinator"), egress=[{"ports": k8s.tcp_ports(443)}]
        ),
    ]


def _monitoring(region: Region, ns: str, rule_groups: list[Obj]) -> list[Obj]:
    interval = min(n.monitoring.metrics_interval_seconds for n in region.edge_nodes)
    relabel = [
        {"sourceLabels": ["__meta_kubernetes_service_label_xiaozhi_io_region"], "targetLabel": "region"},
        {"sourceLabels": ["__meta_kubernetes_service_label_xiaozhi_io_edge_node"], "targetLabel": "node"},
    ]
    lbls = k8s.labels("monitoring", extra={REGION_LABEL: region.name})
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": k8s.meta(EDGE_JOB, ns, lbls),
        "spec": {
            "jobLabel": JOB_LABEL,
            "selector": {"matchLabels": {JOB_LABEL: EDGE_JOB}},
            "namespaceSelector": {"matchNames": [ns]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": f"{interval}s", "relabelings": relabel}],
        },
    }
    rules = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": k8s.meta(f"{EDGE_JOB}-rules", ns, lbls),
        "spec": {"groups": rule_groups},
    }
    return [monitor, rules]
