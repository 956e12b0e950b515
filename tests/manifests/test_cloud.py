"""The cloud builder: LLMs, router, orchestrator, object store, backup, logs, Helm values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.manifests import find, production_variant, variant
from xzctl.errors import BadInputError
from xzctl.manifests.cloud import cloud_helm_charts, cloud_objects, restic_repository
from xzctl.provision.objects import target_objects
from xzctl.spec import Fleet

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def cloud(example_fleet: Fleet) -> list[Obj]:
    objects = cloud_objects(example_fleet)
    assert objects == target_objects(example_fleet, "cloud").objects()
    return objects


def _main(obj: Obj) -> Obj:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    containers: list[Obj] = spec["template"]["spec"]["containers"]
    return containers[0]


def test_llm_deployments_follow_the_spec(cloud: list[Obj]) -> None:
    for name, replicas, gpus, batch in (("qwen-72b", 4, "4", "32"), ("qwen-14b", 8, "2", "64")):
        dep = find(cloud, "Deployment", f"llm-{name}")
        assert dep["spec"]["replicas"] == replicas
        main = _main(dep)
        assert main["resources"]["limits"]["nvidia.com/gpu"] == gpus == main["resources"]["requests"]["nvidia.com/gpu"]
        env = {e["name"]: e["value"] for e in main["env"]}
        assert env["MAX_BATCH_SIZE"] == batch and env["TENSOR_PARALLEL_SIZE"] == gpus
        pdb = find(cloud, "PodDisruptionBudget", f"llm-{name}")
        assert pdb["spec"]["maxUnavailable"] == 1


def test_router_config_and_orchestrator(cloud: list[Obj]) -> None:
    router = yaml.safe_load(find(cloud, "ConfigMap", "llm-router")["data"]["router.yaml"])
    assert router["strategy"] == "complexity_aware"
    assert (router["complexity_threshold"], router["fallback_enabled"], router["timeout_seconds"]) == (0.7, True, 30)
    assert [m["endpoint"] for m in router["models"]] == [
        "http://llm-qwen-72b.xiaozhi-cloud.svc.cluster.local:8000/v1",
        "http://llm-qwen-14b.xiaozhi-cloud.svc.cluster.local:8000/v1",
    ]
    assert router["l3"]["bucket"] == "s3://xiaozhi-cache" and router["l3"]["ttl_seconds"] == 86400
    dep = find(cloud, "Deployment", "cloud-orchestrator")
    main = _main(dep)
    assert dep["spec"]["replicas"] == 3
    assert main["resources"] == {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}}
    assert [(p["name"], p["containerPort"]) for p in main["ports"]] == [("http", 8080), ("metrics", 9090)]
    ingress = find(cloud, "Ingress", "cloud-orchestrator")
    assert ingress["spec"]["rules"][0]["host"] == "cloud.xiaozhi.example"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/v1"
    assert ingress["spec"]["tls"][0]["secretName"] == "cloud-orchestrator-tls"


def test_backup_cronjob(cloud: list[Obj]) -> None:
    job = find(cloud, "CronJob", "backup")
    assert job["spec"]["schedule"] == "0 2 * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    main = _main(job)
    assert main["image"] == "restic/restic:0.16.4"
    assert "restic forget --host xiaozhi-cloud --keep-within 7d --prune" in main["command"][-1]
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "data-object-store-0", "readOnly": True}
    assert volumes["credentials"]["secret"]["secretName"] == "xzctl-backup-credentials"
    assert restic_repository("s3://xiaozhi-backups/cloud") == "s3:s3.amazonaws.com/xiaozhi-backups/cloud"


def test_object_store_and_log_retention(cloud: list[Obj]) -> None:
    store = find(cloud, "StatefulSet", "object-store")
    claim = store["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data"  # the backup job mounts data-object-store-0
    env = {e["name"]: e for e in _main(store)["env"]}
    assert env["MINIO_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "xzctl-object-store"
    job = find(cloud, "Job", "log-retention-30d")
    assert job["metadata"]["namespace"] == "logging"
    assert '"min_age":"30d"' in _main(job)["command"][-1]


def test_helm_values_come_from_the_spec(example_fleet: Fleet, tmp_path: Path) -> None:
    charts = {c.name: c for c in cloud_helm_charts(example_fleet)}
    assert set(charts) == {"monitoring", "elasticsearch", "kibana", "autoscaling-metrics"}
    values = charts["monitoring"].values
    assert values["prometheus"]["prometheusSpec"]["retention"] == "15d"
    assert values["grafana"]["enabled"] and values["alertmanager"]["enabled"]
    fleet = variant(
        tmp_path,
        (r"monitoring: \{prometheus: true, grafana: true", "monitoring: {prometheus: true, grafana: false"),
        (r"logging: \{elasticsearch: true", "logging: {elasticsearch: false"),
    )
    charts = {c.name: c for c in cloud_helm_charts(fleet)}
    assert set(charts) == {"monitoring", "autoscaling-metrics"}
    assert charts["monitoring"].values["grafana"]["enabled"] is False
    assert "CloudLogging" not in [u.kind for u in target_objects(fleet, "cloud").units]


def test_production_cloud_fails_closed_on_images_the_spec_cannot_pin(tmp_path: Path) -> None:
    """MinIO and the log job's curl image have no spec field yet: production refuses their tags."""
    fleet = production_variant(tmp_path)
    with pytest.raises(BadInputError, match=r"object store: image 'quay\.io/minio/minio"):
        target_objects(fleet, "cloud")


def test_backup_without_credentials_is_refused(tmp_path: Path) -> None:
    fleet = variant(tmp_path, (r"  backup_credentials: \{pulumi_secret: backupCredentials\}\n", ""))
    with pytest.raises(BadInputError, match=r"secrets\.backup_credentials is not set"):
        target_objects(fleet, "cloud")
    assert target_objects(fleet, "beijing").units  # the edge regions do not need it
