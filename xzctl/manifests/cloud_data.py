"""The cloud's data objects: MinIO (the L3 cache tier), its nightly restic backup, log retention."""

from __future__ import annotations

import json

from xzctl.errors import BadInputError
from xzctl.manifests import k8s
from xzctl.manifests.cloud_common import component_labels, component_selector
from xzctl.manifests.k8s import SECRET_KEY, Obj
from xzctl.spec.models import Fleet, Resources, SecretRef

OBJECT_STORE_PORT = 9000
LOGGING_NAMESPACE = "logging"
# MinIO's root password has no field in the fleet spec; it comes from this Pulumi config secret.
OBJECT_STORE_SECRET_REF = SecretRef(pulumi_secret="objectStoreRootPassword")
OBJECT_STORE_SECRET = "xzctl-object-store"
OBJECT_STORE_SIZE = "500Gi"
OBJECT_STORE_CLAIMS = 1  # its StatefulSet's one replica and claim template
MINIO_IMAGE = "quay.io/minio/minio:RELEASE.2024-10-13T13-34-11Z"
CURL_IMAGE = "curlimages/curl:8.10.1"


def object_store(fleet: Fleet, ns: str) -> list[Obj]:
    """MinIO serving the L3 cache bucket (the seed plan's MinIO tier) inside the cloud cluster."""
    name, lbls, sel = "object-store", component_labels("object-store"), component_selector("object-store")
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
    pod = k8s.pod_spec([main], volumes=[k8s.empty_dir("tmp")])
    claim = k8s.pvc("data", ns, lbls, OBJECT_STORE_SIZE)["spec"]
    sts = k8s.stateful_set(name, ns, lbls, sel, pod=pod, claim=claim)
    return [sts, k8s.service(name, ns, lbls, sel, [("s3", OBJECT_STORE_PORT)])]


def restic_repository(target: str) -> str:
    """s3://bucket/path -> restic's s3:s3.amazonaws.com/bucket/path (RESTIC_REPOSITORY in the credentials overrides it)."""
    return "s3:s3.amazonaws.com/" + target.removeprefix("s3://")


def backup(fleet: Fleet, ns: str) -> list[Obj]:
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
                {
                    "labelSelector": {"matchLabels": component_selector("object-store")},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    volumes = [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-object-store-0", "readOnly": True}},
        {"name": "credentials", "secret": {"secretName": k8s.secret_name("backup_credentials"), "defaultMode": 0o400}},
        k8s.empty_dir("tmp", "10Gi"),
    ]
    pod = k8s.pod_spec([main], volumes=volumes, extra={"restartPolicy": "OnFailure", "affinity": affinity})
    lbls = component_labels(name)
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


def log_retention(fleet: Fleet) -> list[Obj]:
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
    lbls = component_labels("log-retention")
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
    selector = {"matchLabels": component_selector("log-retention")}
    fence = k8s.network_policy(LOGGING_NAMESPACE, "log-retention", selector, ingress=[], egress=[k8s.DNS_EGRESS, to_es])
    return [job, fence]
