"""The Kubernetes objects of the cloud cluster: LLMs, the router/orchestrator, monitoring, logs, L3, backup.

Units: CloudBase (namespace, secrets), CloudLlm (one per model), CloudOrchestrator (router config,
the orchestrator and its public endpoint), ObjectStore (MinIO: the L3 cache tier), CloudBackup
(restic CronJob of the object store), CloudLogging (index retention job). Monitoring and the log
stores are Helm charts (`cloud_helm_charts`): Pulumi installs them as Helm releases and
`xzctl render manifests cloud` writes their values files. The data objects (object store, backup, log
retention) are built in `cloud_data`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from xzctl import service_contract as sc
from xzctl.manifests import k8s
from xzctl.manifests.autoscaling import adapter_chart, cloud_autoscalers
from xzctl.manifests.cloud_common import component_labels, component_selector
from xzctl.manifests.cloud_data import (
    LOGGING_NAMESPACE,
    OBJECT_STORE_PORT,
    OBJECT_STORE_SECRET,
    OBJECT_STORE_SECRET_REF,
    backup,
    log_retention,
    object_store,
    restic_repository,
)
from xzctl.manifests.k8s import MONITORING_NAMESPACE, SECRET_KEY, HelmChart, Obj, Unit
from xzctl.spec.models import Fleet, LlmModel, SecretRef

# restic_repository is imported from here by the tests.
__all__ = ["cloud_helm_charts", "cloud_objects", "cloud_secrets", "cloud_units", "restic_repository", "router_config"]

LLM_PORT = sc.LLM.main.port
ORCHESTRATOR_PORTS = [("http", 8080), ("metrics", 9090)]
ELASTIC_REPO = "https://helm.elastic.co"
ELASTIC_VERSION = "8.5.1"


def cloud_secrets(fleet: Fleet) -> dict[str, SecretRef]:
    """Secret name -> reference, for every secret the cloud's pods read."""
    out = {OBJECT_STORE_SECRET: OBJECT_STORE_SECRET_REF}
    for field in ("llm_router_key", "backup_credentials"):
        ref = getattr(fleet.secrets, field)
        if ref is not None:
            out[k8s.secret_name(field)] = ref
    return out


def cloud_units(fleet: Fleet) -> list[Unit]:
    c = fleet.cloud
    ns = c.kubernetes.namespace
    base = [k8s.namespace(ns), k8s.namespace(MONITORING_NAMESPACE, "privileged")]
    if c.logging.elasticsearch:
        base.append(k8s.namespace(LOGGING_NAMESPACE, "privileged"))
    base += [
        k8s.secret_ref_object(name, ns, SECRET_KEY, ref.describe(), name) for name, ref in cloud_secrets(fleet).items()
    ]
    units = [Unit("CloudBase", "cloud", base)]
    units += [Unit("CloudLlm", m.name, _llm(fleet, m, ns)) for m in c.llm_models]
    units.append(Unit("CloudOrchestrator", "cloud-orchestrator", _orchestrator(fleet, ns)))
    units.append(Unit("ObjectStore", "l3", object_store(fleet, ns)))
    units.append(Unit("CloudBackup", "backup", backup(fleet, ns)))
    if c.logging.elasticsearch:
        units.append(Unit("CloudLogging", "logging", log_retention(fleet)))
    units.append(Unit("NetworkPolicies", "cloud", _network_policies(fleet, ns)))
    if autoscalers := cloud_autoscalers(fleet, ns):
        units.append(Unit("Autoscaling", "cloud", autoscalers))
    return units


def cloud_objects(fleet: Fleet) -> list[Obj]:
    return [o for u in cloud_units(fleet) for o in u.objects]


def _llm(fleet: Fleet, m: LlmModel, ns: str) -> list[Obj]:
    name = f"llm-{m.name}"
    gpus = {"nvidia.com/gpu": str(m.gpu_per_replica)} if m.gpu_per_replica else None
    env = [
        {"name": sc.LLM_MODEL_ENV, "value": m.name},
        {"name": sc.LLM_BATCH_SIZE_ENV, "value": str(m.max_batch_size)},
        {"name": "TENSOR_PARALLEL_SIZE", "value": str(max(m.gpu_per_replica, 1))},
        *({"name": k, "value": v} for k, v in sc.LLM.port_environment().items()),
        {"name": "MODEL_DIR", "value": "/models"},
    ]
    main = k8s.container(
        "llm",
        k8s.check_image(fleet, m.image, f"cloud llm {m.name}"),
        k8s.resources(m.resources, gpus),
        ports=[(sc.LLM.main.name, LLM_PORT)],
        readiness=k8s.http_probe(sc.LLM.ready_path, sc.LLM.main.name, period=10),
        # Loading tens of GB of weights takes minutes: a startup-sized delay keeps liveness from killing it.
        liveness=k8s.http_probe(sc.LLM.health_path, sc.LLM.main.name, period=30, delay=600),
        env=env,
        mounts=[
            {"name": "models", "mountPath": "/models"},
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    volumes = [
        k8s.empty_dir("models", "300Gi"),
        # Tensor-parallel workers exchange tensors through shared memory.
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
        k8s.empty_dir("tmp", "10Gi"),
    ]
    tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    pod = k8s.pod_spec([main], volumes=volumes, extra={"tolerations": tolerations})
    lbls, sel = component_labels(name), component_selector(name)
    return [
        k8s.deployment(name, ns, lbls, sel, replicas=m.replicas, pod=pod),
        k8s.service(name, ns, lbls, sel, [(sc.LLM.main.name, LLM_PORT)]),
        *k8s.pdb(name, ns, lbls, sel, m.replicas),
    ]


def router_config(fleet: Fleet) -> Obj:
    """The complexity-aware routing the orchestrator applies, from the spec."""
    c, ns = fleet.cloud, fleet.cloud.kubernetes.namespace
    return {
        "strategy": c.load_balancing.strategy,
        "complexity_threshold": c.routing.complexity_threshold,
        "fallback_enabled": c.load_balancing.fallback_enabled,
        "timeout_seconds": c.load_balancing.timeout_seconds,
        "edge_model": c.routing.edge_model,
        "cloud_model": c.routing.cloud_model,
        "models": [
            {
                "name": m.name,
                "endpoint": f"http://llm-{m.name}.{ns}.svc.cluster.local:{LLM_PORT}/v1",
                "replicas": m.replicas,
                "max_batch_size": m.max_batch_size,
            }
            for m in c.llm_models
        ],
        "l3": {
            "endpoint": f"http://object-store.{ns}.svc.cluster.local:{OBJECT_STORE_PORT}",
            "bucket": fleet.cache_tiers.l3.bucket,
            "ttl_seconds": fleet.cache_tiers.l3.ttl_seconds,
        },
    }


def _orchestrator(fleet: Fleet, ns: str) -> list[Obj]:
    import yaml

    o, name = fleet.cloud.orchestrator, "cloud-orchestrator"
    lbls, sel = component_labels(name), component_selector(name)
    config = k8s.config_map(
        "llm-router",
        ns,
        component_labels("llm-router"),
        {"router.yaml": yaml.safe_dump(router_config(fleet), sort_keys=False)},
    )
    env: list[Obj] = [
        {"name": "CLUSTER_MODE", "value": "cloud"},
        {"name": "EDGE_NODES_DISCOVERY", "value": "kubernetes"},
        {"name": "ROUTER_CONFIG", "value": "/etc/router/router.yaml"},
    ]
    if fleet.secrets.llm_router_key is not None:
        env.append(k8s.secret_env("LLM_ROUTER_KEY", k8s.secret_name("llm_router_key"), SECRET_KEY))
    main = k8s.container(
        "orchestrator",
        k8s.check_image(fleet, o.image, "cloud orchestrator"),
        k8s.resources(o.resources),
        ports=ORCHESTRATOR_PORTS,
        readiness=k8s.http_probe("/healthz", "http", period=5),
        liveness=k8s.http_probe("/healthz", "http", period=20, delay=15),
        env=env,
        mounts=[{"name": "router", "mountPath": "/etc/router", "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
    )
    # Spread the replicas so one lost cloud server never takes the router down.
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": sel},
        }
    ]
    pod = k8s.pod_spec(
        [main],
        volumes=[{"name": "router", "configMap": {"name": "llm-router"}}, k8s.empty_dir("tmp")],
        extra={"topologySpreadConstraints": spread},
    )
    endpoint = urlsplit(fleet.cloud.endpoint)
    host = endpoint.hostname or ""
    ingress: Obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": k8s.meta(name, ns, lbls),
        "spec": {
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": endpoint.path or "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": name, "port": {"name": "http"}}},
                            }
                        ]
                    },
                }
            ]
        },
    }
    if endpoint.scheme == "https":
        ingress["spec"]["tls"] = [{"hosts": [host], "secretName": f"{name}-tls"}]
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": k8s.meta(name, ns, lbls),
        "spec": {"selector": {"matchLabels": sel}, "endpoints": [{"port": "metrics", "path": sc.METRICS_PATH}]},
    }
    return [
        config,
        k8s.deployment(name, ns, lbls, sel, replicas=o.replicas, pod=pod),
        k8s.service(name, ns, lbls, sel, ORCHESTRATOR_PORTS),
        *k8s.pdb(name, ns, lbls, sel, o.replicas),
        ingress,
        monitor,
    ]


def _network_policies(fleet: Fleet, ns: str) -> list[Obj]:
    """Default deny in the cloud namespace, then one allow per flow."""
    orchestrator = {"matchLabels": component_selector("cloud-orchestrator")}
    store = {"matchLabels": component_selector("object-store")}
    names = [f"llm-{m.name}" for m in fleet.cloud.llm_models]
    llms = {"matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": names}]}
    https_out = [{"ports": k8s.tcp_ports(443)}]
    metrics_in = {"from": [k8s.from_namespace(MONITORING_NAMESPACE)], "ports": k8s.tcp_ports("metrics")}
    return [
        k8s.network_policy(ns, "default-deny", {}, ingress=[], egress=[]),
        k8s.network_policy(ns, "allow-dns", {}, egress=[k8s.DNS_EGRESS]),
        # Edge coordinators arrive through the ingress controller; metrics go to the monitoring namespace.
        k8s.network_policy(
            ns, "allow-to-orchestrator", orchestrator, ingress=[{"ports": k8s.tcp_ports("http")}, metrics_in]
        ),
        k8s.network_policy(
            ns,
            "allow-to-llm",
            llms,
            ingress=[{"from": [{"podSelector": orchestrator}], "ports": k8s.tcp_ports("http")}],
        ),
        k8s.network_policy(
            ns,
            "allow-to-object-store",
            store,
            ingress=[{"from": [{"podSelector": orchestrator}], "ports": k8s.tcp_ports("s3")}],
        ),
        k8s.network_policy(
            ns, "allow-orchestrator-out", orchestrator, egress=[{"to": [{"podSelector": llms}, {"podSelector": store}]}]
        ),
        # Model weights and backups leave over HTTPS only.
        k8s.network_policy(ns, "allow-llm-https-out", llms, egress=https_out),
        k8s.network_policy(
            ns, "allow-backup-https-out", {"matchLabels": component_selector("backup")}, egress=https_out
        ),
    ]


def cloud_helm_charts(fleet: Fleet) -> list[HelmChart]:
    """kube-prometheus-stack (and Elasticsearch/Kibana when the spec enables them), values from the spec."""
    mon, log = fleet.cloud.monitoring, fleet.cloud.logging
    charts = [
        k8s.monitoring_chart(
            retention_days=mon.retention_days,
            prometheus=mon.prometheus,
            alertmanager=mon.alertmanager,
            grafana=mon.grafana,
        )
    ]
    if log.elasticsearch:
        charts.append(
            HelmChart(
                "elasticsearch", "elasticsearch", ELASTIC_REPO, ELASTIC_VERSION, LOGGING_NAMESPACE, {"replicas": 3}
            )
        )
    if log.kibana and log.elasticsearch:
        charts.append(
            HelmChart(
                "kibana",
                "kibana",
                ELASTIC_REPO,
                ELASTIC_VERSION,
                LOGGING_NAMESPACE,
                {"elasticsearchHosts": "https://elasticsearch-master:9200"},
            )
        )
    return charts + adapter_chart(fleet)
