"""The objects of one edge node: the xiaozhi server, vad/asr/tts(/llm), Redis and the spec's coordinator if any."""

from __future__ import annotations

from typing import Any

from xzctl import service_contract as sc
from xzctl.errors import NotFoundError
from xzctl.manifests import k8s
from xzctl.manifests.edge_common import (
    JOB_LABEL,
    METRICS_PORT,
    NODE_CONFIG_KEY,
    SENSEVOICE_MODEL,
    SERVER_CONFIG_KEY,
    SERVER_HOME,
    PodFor,
    RegionInputs,
    common_env,
    env_values,
    k8s_name,
    labels,
    selector,
)
from xzctl.manifests.k8s import GPU_COUNT_ANNOTATION, GPU_SHARING_ANNOTATION, NODE_LABEL, SECRET_KEY, Obj, secret_name
from xzctl.manifests.pins import ImagePins
from xzctl.metrics.contract import EDGE_JOB
from xzctl.spec.models import Coordinator, EdgeNode, Fleet, InferenceService, Resources


def contract_ports(edge: sc.EdgeService) -> list[tuple[str, int]]:
    """(port name, port) of every endpoint of a service: its container ports and its Service's."""
    return [(e.name, e.port) for e in edge.endpoints]


class NodeBuilder:
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
                labels(node, "config"),
                {NODE_CONFIG_KEY: node_yaml, SERVER_CONFIG_KEY: server_config},
                {
                    GPU_COUNT_ANNOTATION: str(node.capacity.gpu.count),
                    GPU_SHARING_ANNOTATION: str(node.capacity.gpu.time_slicing_replicas),
                },
            ),
            # The SenseVoice model file is not in the server image; `xzctl bootstrap` copies it here.
            k8s.pvc(self.name("models"), self.ns, labels(node, "models"), "5Gi"),
        ]
        # One server process per pod, the Service (L4, kube-proxy) in front: a WebSocket stays on the pod it reached
        # for its life, and every pod fills the same auth key, so a token from any pod's OTA opens any pod's socket.
        out += self.workload("xiaozhi_server", node.server_processes, self.server_pod, self.server_ports())
        # The services' own /metrics are the node's series (job xiaozhi-edge): the region's ServiceMonitor selects
        # the Services with this label, so the canary analysis reads what the pods themselves measured.
        scrape = {JOB_LABEL: EDGE_JOB}
        for name, svc in s.inference().items():
            ports = contract_ports(sc.SERVICES[name])
            out += self.workload(name, svc.replicas, self.inference_pod(name, svc), ports, scrape)
        if s.coordinator is not None:
            coordinator_ports = [("http", self.ports["coordinator"]), ("metrics", METRICS_PORT)]
            pod = self.coordinator_pod(endpoint, s.coordinator)
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
            sel = selector(node, service, track)
            lbls = labels(node, service, track)
            out.append(k8s.deployment(name, self.ns, lbls, sel, replicas=count, pod=pod_for(image, track)))
        svc_labels = {**labels(node, service), **(service_labels or {})}
        out.append(k8s.service(base, self.ns, svc_labels, selector(node, service), ports))
        out += k8s.pdb(base, self.ns, labels(node, service), selector(node, service, "stable"), replicas)
        return out

    def server_ports(self) -> list[tuple[str, int]]:
        """The server's WebSocket and OTA/HTTP ports: the contract's endpoints at the ports the spec sets."""
        srv, ws, http = self.node.services.xiaozhi_server, *sc.XIAOZHI_SERVER.endpoints
        return [(ws.name, srv.port), (http.name, srv.http_port)]

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
            ports=self.server_ports(),
            # The upstream server's only health signal: a plain GET on the WebSocket port answers 200.
            readiness=k8s.http_probe(sc.XIAOZHI_SERVER.ready_path, sc.XIAOZHI_SERVER.main.name, period=5),
            liveness=k8s.http_probe(sc.XIAOZHI_SERVER.health_path, sc.XIAOZHI_SERVER.main.name, period=20, delay=30),
            env=[{"name": "TZ", "value": "UTC"}, *common_env(track, image)],
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
        edge = sc.SERVICES[name]
        # only what the service reads (the contract's names): the model is the image's, a setting no service reads
        # is not passed on
        values: dict[str, Any] = {env: getattr(svc, field) for field, env in edge.spec_env}
        values |= edge.port_environment()
        cache = getattr(svc, "cache_size", None)

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
                ports=contract_ports(edge),
                readiness=k8s.http_probe(edge.ready_path, edge.main.name, period=5),
                # Loading a model takes time: liveness waits for it rather than killing a loading pod.
                liveness=k8s.http_probe(edge.health_path, edge.main.name, period=20, delay=60),
                env=[*common_env(track, image), *env_values(values)],
                mounts=mounts,
            )
            return k8s.pod_spec([main], node_selector=self.pinned(), volumes=volumes)

        return pod

    def coordinator_pod(self, endpoint: Any, coordinator: Coordinator) -> PodFor:
        """A site's own coordinator (no build here makes one): its env as the spec's cache tiers set it."""
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
                *env_values(values),
                *common_env(track, image),
            ]
            if self.has_redis_password:
                env.append(k8s.secret_env("REDIS_PASSWORD", secret_name("redis_password"), SECRET_KEY))
            main = k8s.container(
                "coordinator",
                image,
                k8s.resources(coordinator.resources),
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

        ws, http = sc.XIAOZHI_SERVER.endpoints
        paths = [path(ws.path, ws.name), path(http.path, http.name), path(sc.XIAOZHI_MCP_PATH, http.name)]
        spec: Obj = {"rules": [{"host": node.public_hostname, "http": {"paths": paths}}]}
        if srv.websocket_scheme == "wss":
            # The certificate (cert-manager or by hand) is expected in this Secret.
            spec["tls"] = [{"hosts": [node.public_hostname], "secretName": f"{node.id}-tls"}]
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": k8s.meta(backend, self.ns, labels(node, "xiaozhi_server")),
            "spec": spec,
        }

    def cache(self) -> list[Obj]:
        from xzctl.spec.quantity import parse_memory

        node, cache, port = self.node, self.node.services.cache, self.ports["cache"]
        name, lbls, sel = self.name("cache"), labels(node, "cache"), selector(node, "cache")
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
        main = k8s.container(
            "redis",
            k8s.check_image(self.fleet, cache.image, f"{node.id} cache"),
            k8s.resources(cache.resources),
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
        claim = k8s.pvc("data", self.ns, lbls, cache.storage_size)["spec"] if cache.persistence else None
        sts = k8s.stateful_set(name, self.ns, lbls, sel, pod=pod, claim=claim)
        return [sts, k8s.service(name, self.ns, lbls, sel, [("redis", port)])]
