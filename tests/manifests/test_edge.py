"""The edge region builder: content of the objects, canaries, production rules, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.manifests import DIGEST, SITE_COORDINATOR, coordinator_variant, find, production_variant, variant
from xzctl import service_contract as sc
from xzctl.errors import BadInputError, NotFoundError
from xzctl.images import load_catalog
from xzctl.manifests.edge import edge_region_objects, edge_region_units, volume_claims
from xzctl.manifests.pins import ServicePin, spec_pins
from xzctl.provision.objects import CLOUD, region_inputs, target_objects
from xzctl.render.node import SERVICE_PORTS
from xzctl.spec import Fleet

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def beijing(example_fleet: Fleet) -> list[Obj]:
    return target_objects(example_fleet, "beijing").objects()


def test_units_of_a_region(example_fleet: Fleet) -> None:
    units = target_objects(example_fleet, "beijing").units
    assert [(u.kind, u.name) for u in units] == [
        ("RegionBase", "beijing"),
        ("GpuSharing", "beijing"),
        ("EdgeNode", "bj-edge-01"),
        ("EdgeCache", "bj-edge-01"),
        ("EdgeNode", "bj-edge-02"),
        ("EdgeCache", "bj-edge-02"),
        ("EdgeNode", "bj-edge-03"),
        ("EdgeCache", "bj-edge-03"),
        ("NetworkPolicies", "beijing"),
        ("RegionMonitoring", "beijing"),
        ("Autoscaling", "beijing"),
    ]


def test_xiaozhi_server_matches_upstream_deployment_facts(beijing: list[Obj], example_fleet: Fleet) -> None:
    server = find(beijing, "Deployment", "bj-edge-01-xiaozhi-server")
    pod = server["spec"]["template"]["spec"]
    main = pod["containers"][0]
    # the image built here from upstream 0.9.6, pulled by the lock's digest
    assert main["image"] == load_catalog().by_digest("registry.xiaozhi.example/inference/xiaozhi-server:0.9.6-1")
    assert "@sha256:" in main["image"]
    assert [(p["name"], p["containerPort"]) for p in main["ports"]] == [("ws", 8000), ("http", 8003)]
    assert main["readinessProbe"]["httpGet"] == {"path": "/", "port": "ws"}
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    model = mounts["/opt/xiaozhi-esp32-server/models/SenseVoiceSmall/model.pt"]
    assert model["readOnly"] and model["subPath"] == "SenseVoiceSmall/model.pt"
    assert "/opt/xiaozhi-esp32-server/data" in mounts
    fill = pod["initContainers"][0]
    assert fill["command"][:2] == ["python3", "-c"]
    assert fill["command"][-2:] == ["/config/server.config.yaml", "/opt/xiaozhi-esp32-server/data/.config.yaml"]
    config = find(beijing, "ConfigMap", "bj-edge-01-config")["data"]
    rendered = region_inputs(example_fleet, "beijing").node_files["bj-edge-01"]
    assert (config["node.yaml"], config["server.config.yaml"]) == rendered
    assert "你的${XIAOZHI_AUTH_KEY}" in config["server.config.yaml"]  # a placeholder, never the key


def test_services_listen_where_the_rendered_configs_point(beijing: list[Obj]) -> None:
    for service in ("vad", "asr", "tts", "llm"):
        svc = find(beijing, "Service", f"bj-edge-02-{service}")
        assert svc["spec"]["ports"][0]["port"] == SERVICE_PORTS[service]
        assert svc["spec"]["selector"] == {"xiaozhi.io/edge-node": "bj-edge-02", "xiaozhi.io/service": service}
    cache = find(beijing, "Service", "bj-edge-02-cache")
    assert cache["spec"]["ports"][0]["port"] == SERVICE_PORTS["cache"]
    # the example runs no coordinator: the inference Services themselves are the node's scrape targets
    assert not [o for o in beijing if "coordinator" in o["metadata"]["name"]]
    for service in ("vad", "asr", "tts", "llm"):
        labels = find(beijing, "Service", f"bj-edge-02-{service}")["metadata"]["labels"]
        assert labels["xiaozhi.io/job"] == "xiaozhi-edge", service
    assert "xiaozhi.io/job" not in find(beijing, "Service", "bj-edge-02-xiaozhi-server")["metadata"]["labels"]


def test_redis_cache_follows_the_spec(beijing: list[Obj]) -> None:
    sts = find(beijing, "StatefulSet", "bj-edge-03-cache")
    main = sts["spec"]["template"]["spec"]["containers"][0]
    assert main["resources"]["limits"]["memory"] == "16Gi"
    args = main["args"]
    assert args[args.index("--maxmemory") + 1] == str(int(16 * 2**30 * 0.85))
    assert args[args.index("--appendonly") + 1] == "yes"
    assert "$(REDIS_PASSWORD)" in args
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "50Gi"


def test_secrets_carry_no_data_and_say_how_to_create_them(beijing: list[Obj]) -> None:
    secrets = [o for o in beijing if o["kind"] == "Secret"]
    assert {s["metadata"]["name"] for s in secrets} == {"xzctl-auth-key", "xzctl-redis-password"}
    for s in secrets:
        assert "data" not in s and "stringData" not in s
        annotations = s["metadata"]["annotations"]
        assert annotations["xzctl.io/how-to-create"].startswith(
            f"kubectl -n xiaozhi-beijing create secret generic {s['metadata']['name']}"
        )
    auth = find(beijing, "Secret", "xzctl-auth-key")
    assert auth["metadata"]["annotations"]["xzctl.io/secret-source"] == "env:XIAOZHI_AUTH_KEY#value"


def test_network_policies_deny_by_default(beijing: list[Obj]) -> None:
    policies = {o["metadata"]["name"]: o["spec"] for o in beijing if o["kind"] == "NetworkPolicy"}
    assert policies["default-deny"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [],
    }
    to_cache = policies["allow-to-cache"]["ingress"][0]
    assert to_cache["ports"] == [{"protocol": "TCP", "port": "redis"}]
    callers = to_cache["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert callers == ["xiaozhi_server"]
    # the region's Prometheus reaches each service's metrics port, and only that one
    scrape = policies["allow-to-inference"]["ingress"][1]
    assert scrape["from"][0]["namespaceSelector"] and scrape["ports"] == [{"protocol": "TCP", "port": "http"}]
    assert "allow-to-coordinator" not in policies


def test_monitoring_resources(beijing: list[Obj]) -> None:
    monitor = find(beijing, "ServiceMonitor", "xiaozhi-edge")
    assert monitor["spec"]["selector"] == {"matchLabels": {"xiaozhi.io/job": "xiaozhi-edge"}}
    # the services' own /metrics, at the contract's port and path, labelled with their region and node
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == (sc.VAD.main.name, sc.VAD.metrics_path)
    assert {(sc.SERVICES[s].main.name, sc.SERVICES[s].metrics_path) for s in ("asr", "tts", "llm")} == {
        (endpoint["port"], endpoint["path"])
    }
    assert endpoint["interval"] == "10s"
    keep, *relabel = endpoint["relabelings"]
    assert keep == {
        "sourceLabels": ["__meta_kubernetes_service_label_xiaozhi_io_service"],
        "regex": "vad|asr|tts|llm",
        "action": "keep",
    }
    assert {r["targetLabel"] for r in relabel} == {"region", "node"}
    rules = find(beijing, "PrometheusRule", "xiaozhi-edge-rules")
    assert [g["name"] for g in rules["spec"]["groups"]] == ["xiaozhi-edge-nodes", "xiaozhi-slo"]


def test_a_coordinator_the_spec_sets_runs_and_is_scraped_on_its_metrics_port(tmp_path: Path) -> None:
    image = SITE_COORDINATOR
    fleet = coordinator_variant(tmp_path)
    objs = target_objects(fleet, "beijing").objects()
    service = find(objs, "Service", "bj-edge-02-coordinator")
    assert [p["port"] for p in service["spec"]["ports"]] == [SERVICE_PORTS["coordinator"], 9090]
    assert service["metadata"]["labels"]["xiaozhi.io/job"] == "xiaozhi-edge"
    main = find(objs, "Deployment", "bj-edge-02-coordinator")["spec"]["template"]["spec"]["containers"][0]
    assert main["image"] == image and main["resources"]["requests"]["cpu"] == "2"
    endpoints = find(objs, "ServiceMonitor", "xiaozhi-edge")["spec"]["endpoints"]
    assert [(e["port"], e["relabelings"][0]["regex"]) for e in endpoints] == [
        ("http", "vad|asr|tts|llm"),
        ("metrics", "coordinator"),
    ]
    policies = {o["metadata"]["name"]: o["spec"] for o in objs if o["kind"] == "NetworkPolicy"}
    assert "allow-to-coordinator" in policies
    callers = policies["allow-to-cache"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert callers == ["xiaozhi_server", "coordinator"]


def test_canary_pin_gets_its_own_deployment_and_no_pdb(example_fleet: Fleet) -> None:
    pins = spec_pins(example_fleet).with_pin(
        "bj-edge-01",
        "tts",
        ServicePin(
            stable="registry.xiaozhi.example/inference/tts:1.3.0", canary="registry.xiaozhi.example/inference/tts:2.0.0"
        ),
    )
    objs = target_objects(example_fleet, "beijing", pins).objects()
    canary = find(objs, "Deployment", "bj-edge-01-tts-canary")
    assert canary["spec"]["replicas"] == 1
    assert canary["spec"]["template"]["metadata"]["labels"]["track"] == "canary"
    assert {"name": "XZ_TRACK", "value": "canary"} in canary["spec"]["template"]["spec"]["containers"][0]["env"]
    pdb = find(objs, "PodDisruptionBudget", "bj-edge-01-tts")
    assert pdb["spec"]["selector"]["matchLabels"]["track"] == "stable"
    assert (
        len([o for o in objs if o["kind"] == "Deployment"])
        == len([o for o in target_objects(example_fleet, "beijing").objects() if o["kind"] == "Deployment"]) + 1
    )


def test_pins_missing_a_node_are_refused(example_fleet: Fleet) -> None:
    pins = spec_pins(example_fleet)
    del pins.nodes["bj-edge-02"]
    with pytest.raises(NotFoundError, match="bj-edge-02"):
        target_objects(example_fleet, "beijing", pins)


def test_production_refuses_a_canary_image_without_digest(tmp_path: Path) -> None:
    fleet = production_variant(tmp_path)
    inputs = region_inputs(fleet, "beijing")
    objs = edge_region_objects(fleet, "beijing", inputs)
    images = {
        c["image"] for o in objs if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert images and all(i.endswith(DIGEST) for i in images)
    assert all(
        c["imagePullPolicy"] == "IfNotPresent"
        for o in objs
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    )
    tagged = spec_pins(fleet).with_pin(
        "bj-edge-01",
        "asr",
        ServicePin(
            stable=f"registry.xiaozhi.example/inference/asr{DIGEST}",
            canary="registry.xiaozhi.example/inference/asr:9.9.9",
        ),
    )
    with pytest.raises(BadInputError, match="not pinned by digest"):
        edge_region_units(fleet, "beijing", inputs, tagged)


def test_no_time_slicing_when_gpus_are_not_shared(tmp_path: Path) -> None:
    fleet = variant(
        tmp_path,
        (
            r"gpu: \{count: 2, model: \"RTX 4090\", memory_gb: 24, time_slicing_replicas: 8\}",
            "gpu: {count: 16, model: A100, memory_gb: 80}",
        ),
    )
    units = target_objects(fleet, "guangzhou").units
    assert "GpuSharing" not in [u.kind for u in units]
    cm = find(target_objects(fleet, "guangzhou").objects(), "ConfigMap", "gz-edge-01-config")
    assert cm["metadata"]["annotations"]["xiaozhi.io/gpu-count"] == "16"


def test_unknown_region_is_refused(example_fleet: Fleet) -> None:
    with pytest.raises(NotFoundError, match="no region 'chengdu'") as caught:
        target_objects(example_fleet, "chengdu")
    assert caught.value.hint == "regions: beijing, guangzhou, shanghai"


def test_time_slicing_config_is_the_device_plugin_format(beijing: list[Obj]) -> None:
    """The same ConfigMap, key and content as the ansible role k3s_server installs with the plugin."""
    cm = find(beijing, "ConfigMap", "nvidia-device-plugin-config")
    assert cm["metadata"]["namespace"] == "kube-system"
    assert cm["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"}
    config = yaml.safe_load(cm["data"]["time-slicing-8"])
    sharing: dict[str, object] = {"renameByDefault": False, "failRequestsGreaterThanOne": False}
    sharing["resources"] = [{"name": "nvidia.com/gpu", "replicas": 8}]
    assert config == {"version": "v1", "sharing": {"timeSlicing": sharing}}
    template = Path(__file__).resolve().parents[2] / "ansible/roles/k3s_server/templates/nvidia-device-plugin.yaml.j2"
    rendered = template.read_text(encoding="utf-8").replace("{{ replicas }}", "8")
    assert "name: nvidia-device-plugin-config" in rendered and "time-slicing-8: |" in rendered
    assert "failRequestsGreaterThanOne: false" in rendered


def test_the_init_step_fills_the_auth_key_as_the_pod_would(beijing: list[Obj], tmp_path: Path) -> None:
    """Run the init container's command on the ConfigMap's file, with the env its secretKeyRefs give."""
    import subprocess
    import sys

    pod = find(beijing, "Deployment", "bj-edge-02-xiaozhi-server")["spec"]["template"]["spec"]
    init = pod["initContainers"][0]
    config = find(beijing, "ConfigMap", "bj-edge-02-config")["data"]
    secrets = {("xzctl-auth-key", "value"): 'k3y: with "quotes" and 中文'}
    env = {
        e["name"]: secrets[(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])]
        for e in init["env"]
    }
    (tmp_path / "config").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "config" / "server.config.yaml").write_text(config["server.config.yaml"], encoding="utf-8")
    # The container paths, mapped into tmp_path: /config -> config, the server's data dir -> data.
    args = [
        a.replace("/config", str(tmp_path / "config")).replace("/opt/xiaozhi-esp32-server/data", str(tmp_path / "data"))
        for a in init["command"][3:]
    ]
    assert init["command"][0] == "python3"
    done = subprocess.run(
        [sys.executable, "-c", init["command"][2], *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    filled = yaml.safe_load((tmp_path / "data" / ".config.yaml").read_text(encoding="utf-8"))
    assert filled["server"]["auth_key"] == secrets[("xzctl-auth-key", "value")]
    failed = subprocess.run(
        [sys.executable, "-c", init["command"][2], *args],
        env={},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode != 0 and "XIAOZHI_AUTH_KEY" in failed.stderr


@pytest.mark.parametrize("persistence", ["true", "false"])
def test_volume_claims_counts_every_claim_the_targets_make(tmp_path: Path, persistence: str) -> None:
    """The sandbox makes a volume per claim: the count must follow what the cloud's and regions' objects claim."""
    fleet = variant(tmp_path, (r"persistence: true", f"persistence: {persistence}"))
    made = 0
    for target in [CLOUD, *fleet.regions]:
        for obj in target_objects(fleet, target).objects():
            if obj["kind"] == "PersistentVolumeClaim":
                made += 1
            elif obj["kind"] == "StatefulSet":
                made += obj["spec"]["replicas"] * len(obj["spec"].get("volumeClaimTemplates", []))
    per_node = 2 if persistence == "true" else 1
    assert made == volume_claims(fleet) == per_node * len(fleet.edge_nodes()) + 1
