"""The Kubernetes objects of the cloud cluster: LLMs, the router/orchestrator, monitoring, logs, L3, backup.

Units: CloudBase (namespace, secrets), CloudLlm (one per model), CloudOrchestrator (router config,
the orchestrator and its public endpoint), ObjectStore (MinIO: the L3 cache tier), CloudBackup
(restic CronJob of the object store), CloudLogging (index retention job). Monitoring and the log
stores are Helm charts (`cloud_helm_charts`): Pulumi installs them as Helm releases and
`xzctl render manifests cloud` writes their values files.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from xzctl.errors import BadInputError
from xzctl.manifests import k8s
from xzctl.manifests.autoscaling import adapter_chart, cloud_autoscalers
from xzctl.manifests.k8s import MONITORING_NAMESPACE, SECRET_KEY, HelmChart, Obj, Unit
from xzctl.spec.models import Fleet, LlmModel, Resources, SecretRef

LLM_PORT = 8000
ORCHESTRATOR_PORTS = [("http", 8080), ("metrics", 9090)]
OBJECT_STORE_PORT = 9000
LOGGING_NAMESPACE = "logging"
# MinIO's root password has no field in the fleet spec; it comes from this Pulumi config secret.
OBJECT_STORE_SECRET_REF = SecretRef(pulumi_secret="objectStoreRootPassword")
OBJECT_STORE_SECRET = "xzctl-object-store"
OBJECT_STORE_SIZE = "500Gi"
ELASTIC_REPO = "https://helm.elastic.co"
ELASTIC_VERSION = "8.5.1"
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2024-10-13T13-34-11Z"
CURL_IMAGE = "curlimages/curl:8.10.1"


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
    units.append(Unit("ObjectStore", "l3", _object_store(fleet, ns)))
    units.append(Unit("CloudBackup", "backup", _backup(fleet, ns)))
    if c.logging.elasticsearch:
        units.append(Unit("CloudLogging", "logging", _log_retention(fleet)))
    units.append(Unit("NetworkPolicies", "cloud", _network_policies(fleet, ns)))
    if autoscalers := cloud_autoscalers(fleet, ns):
        units.append(Unit("Autoscaling", "cloud", autoscalers))
    return units


def cloud_objects(fleet: Fleet) -> list[Obj]:
    return [o for u in cloud_units(fleet) for o in u.objects]


def _labels(component: str) -> dict[str, str]:
    return k8s.labels(component, extra={"xiaozhi.io/tier": "cloud"})


def _sel(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": k8s.PART_OF}


def _llm(fleet: Fleet, m: LlmModel, ns: str) -> list[Obj]:
    name = f"llm-{m.name}"
    gpus = {"nvidia.com/gpu": str(m.gpu_per_replica)} if m.gpu_per_replica else None
    env = [
        {"name": "MODEL", "value": m.name},
        {"name": "MAX_BATCH_SIZE", "value": str(m.max_batch_size)},
        {"name": "TENSOR_PARALLEL_SIZE", "value": str(max(m.gpu_per_replica, 1))},
        {"name": "PORT", "value": str(LLM_PORT)},
        {"name": "MODEL_DIR", "value": "/models"},
    ]
    main = k8s.container(
        "llm",
        k8s.check_image(fleet, m.image, f"cloud llm {m.name}"),
        k8s.resources(m.resources, gpus),
        ports=[("http", LLM_PORT)],
        readiness=k8s.http_probe("/health", "http", period=10),
        # Loading tens of GB of weights takes minutes: a startup-sized delay keeps liveness from killing it.
        liveness=k8s.http_probe("/health", "http", period=30, delay=600),
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
    lbls, sel = _labels(name), _sel(name)
    return [
        k8s.deployment(name, ns, lbls, sel, replicas=m.replicas, pod=pod),
        k8s.service(name, ns, lbls, sel, [("http", LLM_PORT)]),
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
    lbls, sel = _labels(name), _sel(name)
    config = k8s.config_map(
        "llm-router", ns, _labels("llm-router"), {"router.yaml": yaml.safe_dump(router_config(fleet), sort_keys=False)}
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
        "spec": {"selector": {"matchLabels": sel}, "endpoints": [{"port": "metrics", "path": "/metrics"}]},
    }
    return [
        config,
        k8s.deployment(name, ns, lbls, sel, replicas=o.replicas, pod=pod),
        k8s.service(name, ns, lbls, sel, ORCHESTRATOR_PORTS),
        *k8s.pdb(name, ns, lbls, sel, o.replicas),
        ingress,
        monitor,
    ]


def _object_store(fleet: Fleet, ns: str) -> list[Obj]:
    """MinIO serving the L3 cache bucket (the seed plan's MinIO tier) inside the cloud cluster."""
    name, lbls, sel = "object-store", _labels("object-store"), _sel("object-store")
    main = k8s.container(
        "minio",
        k8s.check_image(fleet, MINIO_IMAGE, "object store"),
        k8s.resources(Resources(cpu_request="1", cpu_limit="4", memory_request="4Gi", memory_limit="8Gi")),
        ports=[("s3", OBJECT_STORE_PORT)],
        readiness=k8s.http_probe("/minio/health/ready", "s3", period=10),
        liveness=k8s.http_probe("/minio/health/live", "s3", period=20, delay=10),
        command=["minio", "server", "/data"],
        env=[
            {"name": "MINIO_ROOT_USER", "value": "xzctl"},
            k8s.secret_env("MINIO_ROOT_PASSWORD", OBJECT_STORE_SECRET, SECRET_KEY),
        ],
        mounts=[{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
    )
    claim = k8s.pvc("data", ns, lbls, OBJECT_STORE_SIZE)
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": k8s.meta(name, ns, lbls),
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": sel},
            "template": {"metadata": {"labels": lbls}, "spec": k8s.pod_spec([main], volumes=[k8s.empty_dir("tmp")])},
            "volumeClaimTemplates": [{"metadata": {"name": "data", "labels": lbls}, "spec": claim["spec"]}],
        },
    }
    return [sts, k8s.service(name, ns, lbls, sel, [("s3", OBJECT_STORE_PORT)])]


def restic_repository(target: str) -> str:
    """s3://bucket/path -> restic's s3:s3.amazonaws.com/bucket/path (RESTIC_REPOSITORY in the credentials overrides it)."""
    return "s3:s3.amazonaws.com/" + target.removeprefix("s3://")


def _backup(fleet: Fleet, ns: str) -> list[Obj]:
    """Nightly restic snapshot of the object store's volume, pruned to the spec's retention."""
    b, name = fleet.cloud.backup, "backup"
    if fleet.secrets.backup_credentials is None:
        # restic needs a repository password and S3 keys: a backup job without them would fail every night.
        raise BadInputError(
            f"cloud.backup targets {b.target} but secrets.backup_credentials is not set",
            hint="add secrets.backup_credentials (an env file: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, RESTIC_PASSWORD)",
        )
    days = b.retention_days
    script = (
        "set -eu; set -a; . /credentials/value; set +a; "
        "restic cat config >/dev/null 2>&1 || restic init; "
        "restic backup --host xiaozhi-cloud --tag l3 /data; "
        f"restic forget --host xiaozhi-cloud --keep-within {days}d --prune"
    )
    main = k8s.container(
        "restic",
        k8s.check_image(fleet, b.image, "cloud backup"),
        k8s.resources(Resources(cpu_request="500m", cpu_limit="2", memory_request="1Gi", memory_limit="4Gi")),
        command=["sh", "-c", script],
        env=[
            {"name": "RESTIC_REPOSITORY", "value": restic_repository(b.target)},
            {"name": "RESTIC_CACHE_DIR", "value": "/tmp/restic"},
        ],
        mounts=[
            {"name": "data", "mountPath": "/data", "readOnly": True},
            {"name": "credentials", "mountPath": "/credentials", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    )
    # The volume is ReadWriteOnce: the job must run on the node that mounts it for MinIO.
    affinity = {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": _sel("object-store")}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    volumes = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-object-store-0", "readOnly": True}},
        {"name": "credentials", "secret": {"secretName": k8s.secret_name("backup_credentials"), "defaultMode": 0o400}},
        k8s.empty_dir("tmp", "10Gi"),
    ]
    pod = k8s.pod_spec([main], volumes=volumes, extra={"restartPolicy": "OnFailure", "affinity": affinity})
    lbls = _labels(name)
    return [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": k8s.meta(name, ns, lbls),
            "spec": {
                "schedule": b.schedule,
                "timeZone": "Etc/UTC",
                "concurrencyPolicy": "Forbid",
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 3,
                "jobTemplate": {
                    "spec": {
                        "backoffLimit": 2,
                        "activeDeadlineSeconds": 6 * 3600,
                        "template": {"metadata": {"labels": lbls}, "spec": pod},
                    }
                },
            },
        }
    ]


def _log_retention(fleet: Fleet) -> list[Obj]:
    """Sets the Elasticsearch ILM policy that deletes log indices after the spec's retention."""
    days = fleet.cloud.logging.retention_days
    phases = {"hot": {"actions": {}}, "delete": {"min_age": f"{days}d", "actions": {"delete": {}}}}
    policy = json.dumps({"policy": {"phases": phases}}, separators=(",", ":"))
    settings = {"index.lifecycle.name": "xiaozhi-logs"}
    template = json.dumps(
        {"index_patterns": ["xiaozhi-logs-*"], "template": {"settings": settings}}, separators=(",", ":")
    )
    es = "https://elasticsearch-master:9200"
    script = (
        "set -eu; "
        f"curl -fsS --cacert /certs/ca.crt -u \"elastic:$ELASTIC_PASSWORD\" -X PUT -H 'Content-Type: application/json' "
        f"{es}/_ilm/policy/xiaozhi-logs -d '{policy}'; "
        f"curl -fsS --cacert /certs/ca.crt -u \"elastic:$ELASTIC_PASSWORD\" -X PUT -H 'Content-Type: application/json' "
        f"{es}/_index_template/xiaozhi-logs -d '{template}'"
    )
    main = k8s.container(
        "set-retention",
        k8s.check_image(fleet, CURL_IMAGE, "log retention job"),
        k8s.resources(Resources(cpu_request="50m", cpu_limit="200m", memory_request="32Mi", memory_limit="64Mi")),
        command=["sh", "-c", script],
        env=[k8s.secret_env("ELASTIC_PASSWORD", "elasticsearch-master-credentials", "password")],
        mounts=[{"name": "certs", "mountPath": "/certs", "readOnly": True}],
    )
    volumes = [{"name": "certs", "secret": {"secretName": "elasticsearch-master-certs"}}]
    pod = k8s.pod_spec([main], volumes=volumes, extra={"restartPolicy": "OnFailure"})
    lbls = _labels("log-retention")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": k8s.meta(f"log-retention-{days}d", LOGGING_NAMESPACE, lbls),
        "spec": {
            "backoffLimit": 10,
            "ttlSecondsAfterFinished": 86400,
            "template": {"metadata": {"labels": lbls}, "spec": pod},
        },
    }
    # Only this job is fenced in: the charts of the logging namespace keep their own traffic rules.
    to_es = {"to": [{"podSelector": {"matchLabels": {"app": "elasticsearch-master"}}}], "ports": k8s.tcp_ports(9200)}
    selector = {"matchLabels": _sel("log-retention")}
    fence = k8s.network_policy(LOGGING_NAMESPACE, "log-retention", selector, ingress=[], egress=[k8s.DNS_EGRESS, to_es])
    return [job, fence]


def _network_policies(fleet: Fleet, ns: str) -> list[Obj]:
    """Default deny in the cloud namespace, then one allow per flow."""
    orchestrator = {"matchLabels": _sel("cloud-orchestrator")}
    store = {"matchLabels": _sel("object-store")}
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
        k8s.network_policy(ns, "allow-backup-https-out", {"matchLabels": _sel("backup")}, egress=https_out),
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
