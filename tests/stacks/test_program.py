"""The stack program under Pulumi mocks, for every region of the bundled fleet and the cloud."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kubernetes_schema import validate_strict
from tests.fixtures.manifests import coordinator_variant
from tests.fixtures.pulumi_mocks import (
    AUTH_KEY,
    CLOUD_ENDPOINT,
    CONFIG_SECRETS,
    SECRET_SIG,
    RecordingMocks,
    StackRun,
    dumps,
    stack_config,
)
from xzctl.errors import BadInputError
from xzctl.images import load_catalog
from xzctl.manifests.pins import ServicePin, spec_pins
from xzctl.provision.automation import PINS_CONFIG
from xzctl.provision.objects import target_objects
from xzctl.provision.stack_config import FLEET, qualified
from xzctl.spec import Fleet

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"


def _container(rec: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers = rec["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if name is None or c["name"] == name)


def test_every_target_runs_and_registers_its_units(stack_runs: dict[str, StackRun], example_fleet: Fleet) -> None:
    assert set(stack_runs) == {*example_fleet.regions, "cloud"}
    for region, r in example_fleet.regions.items():
        run = stack_runs[region]
        nodes = {rec.name for rec in run.of_type("xzctl:edge:EdgeNode")}
        assert nodes == {n.id for n in r.edge_nodes}
        assert {rec.name for rec in run.of_type("xzctl:edge:EdgeCache")} == nodes
        assert len(run.of_type("xzctl:edge:NetworkPolicies")) == 1
        assert len(run.of_type("xzctl:edge:RegionMonitoring")) == 1
        assert len(run.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")) == 3 * len(r.edge_nodes)
        # The region's Prometheus (and the CRDs of its ServiceMonitor) comes from its own Helm release.
        release = run.named("kubernetes:helm.sh/v3:Release", "monitoring").inputs
        assert release["values"]["prometheus"]["prometheusSpec"]["externalLabels"] == {"region": region}
        assert release["values"]["grafana"]["enabled"] is False
    cloud = stack_runs["cloud"]
    assert {rec.name for rec in cloud.of_type("xzctl:cloud:CloudLlm")} == {"qwen-72b", "qwen-14b"}
    assert {rec.name for rec in cloud.of_type("xzctl:cloud:HelmRelease")} == {
        "monitoring",
        "elasticsearch",
        "kibana",
        "autoscaling-metrics",
    }


def test_edge_replicas_gpus_and_node_pinning(stack_runs: dict[str, StackRun], example_fleet: Fleet) -> None:
    run = stack_runs["beijing"]
    for node in example_fleet.regions["beijing"].edge_nodes:
        expected = {"vad": (4, None), "asr": (6, "1"), "tts": (4, "1"), "llm": (1, "2")}
        for service, (replicas, gpus) in expected.items():
            rec = run.named(DEPLOYMENT, f"xiaozhi-beijing/{node.id}-{service}").inputs
            assert rec["spec"]["replicas"] == replicas
            pod = rec["spec"]["template"]["spec"]
            assert pod["nodeSelector"] == {"xiaozhi.io/edge-node": node.id}
            assert _container(rec)["resources"]["limits"].get("nvidia.com/gpu") == gpus
        vad, llm = (
            {
                e["name"]: e["value"]
                for e in _container(run.named(DEPLOYMENT, f"xiaozhi-beijing/{node.id}-{s}").inputs)["env"]
            }
            for s in ("vad", "llm")
        )
        assert vad["XZ_BATCH_SIZE"] == "16"
        assert (llm["MODEL"], llm["MAX_BATCH_SIZE"]) == ("Qwen-1.8B-Chat", "8")
    slicing = run.named(CONFIGMAP, "kube-system/nvidia-device-plugin-config").inputs
    assert set(slicing["data"]) == {"time-slicing-8"}  # the entry bootstrap labels each node with
    assert "replicas: 8" in slicing["data"]["time-slicing-8"]


def test_server_gets_the_auth_key_only_from_a_pulumi_secret(stack_runs: dict[str, StackRun]) -> None:
    for target, run in stack_runs.items():
        # The key never appears in clear anywhere in what the engine receives, except inside a secret wrapper.
        for rec in run.resources:
            text = dumps(rec.inputs)
            if AUTH_KEY in text:
                assert rec.typ == SECRET, f"{rec.typ} {rec.name} carries the auth key"
        if target == "cloud":
            continue
        secret = run.named(SECRET, f"xiaozhi-{target}/xzctl-auth-key").inputs
        assert secret["stringData"][SECRET_SIG]  # marked secret on the wire
        assert secret["stringData"]["value"] == {"value": AUTH_KEY}
        server = next(r.inputs for r in run.of_type(DEPLOYMENT) if r.name.endswith("-xiaozhi-server"))
        init = server["spec"]["template"]["spec"]["initContainers"][0]
        assert init["env"] == [
            {"name": "XIAOZHI_AUTH_KEY", "valueFrom": {"secretKeyRef": {"name": "xzctl-auth-key", "key": "value"}}}
        ]
        redis = run.named(SECRET, f"xiaozhi-{target}/xzctl-redis-password").inputs
        assert redis["stringData"]["value"] == {"value": CONFIG_SECRETS["xzctl:redisPassword"]}


def test_a_coordinator_reads_the_cloud_endpoint_through_the_stack_reference(
    stack_runs: dict[str, StackRun], pulumi_mocks: RecordingMocks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for target, run in stack_runs.items():
        refs = run.of_type("pulumi:pulumi:StackReference")
        assert [r.name for r in refs] == ([] if target == "cloud" else ["organization/xzctl/cloud"])
        # the example runs no coordinator: no build here makes its image
        assert not [r for r in run.of_type(DEPLOYMENT) if r.name.endswith("-coordinator")]
    # a site that brings its own coordinator sets services.coordinator; it calls the cloud router
    coordinator_variant(tmp_path)
    monkeypatch.setenv("XIAOZHI_AUTH_KEY", AUTH_KEY)
    config = {**stack_config("beijing"), qualified(FLEET): str(tmp_path / "fleet.yaml")}
    run = StackRun("beijing", pulumi_mocks.run(config, list(CONFIG_SECRETS)))
    coordinators = [r for r in run.of_type(DEPLOYMENT) if r.name.endswith("-coordinator")]
    assert len(coordinators) == 3
    for rec in coordinators:
        env = {e["name"]: e for e in _container(rec.inputs)["env"]}
        assert env["CLOUD_ENDPOINT"]["value"] == CLOUD_ENDPOINT
        assert env["NODE_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
        assert _container(rec.inputs)["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
        assert _container(rec.inputs)["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}


def test_providers_target_the_spec_contexts(stack_runs: dict[str, StackRun]) -> None:
    expected = {"beijing": "k3s-beijing", "shanghai": "k3s-shanghai", "guangzhou": "k3s-guangzhou", "cloud": "cloud"}
    for target, run in stack_runs.items():
        providers = run.of_type("pulumi:providers:kubernetes")
        assert [p.inputs.get("context") for p in providers] == [expected[target]]
        kube = [r for r in run.resources if r.typ.startswith("kubernetes:")]
        assert kube and all(r.provider and providers[0].name in r.provider for r in kube)


def test_cloud_llms_router_and_helm_values(stack_runs: dict[str, StackRun]) -> None:
    run = stack_runs["cloud"]
    big = run.named(DEPLOYMENT, "xiaozhi-cloud/llm-qwen-72b").inputs
    small = run.named(DEPLOYMENT, "xiaozhi-cloud/llm-qwen-14b").inputs
    assert (big["spec"]["replicas"], _container(big)["resources"]["limits"]["nvidia.com/gpu"]) == (4, "4")
    assert (small["spec"]["replicas"], _container(small)["resources"]["limits"]["nvidia.com/gpu"]) == (8, "2")
    assert {"name": "MAX_BATCH_SIZE", "value": "32"} in _container(big)["env"]
    orchestrator = run.named(DEPLOYMENT, "xiaozhi-cloud/cloud-orchestrator").inputs
    assert orchestrator["spec"]["replicas"] == 3
    assert [p["containerPort"] for p in _container(orchestrator)["ports"]] == [8080, 9090]
    router = run.named(CONFIGMAP, "xiaozhi-cloud/llm-router").inputs["data"]["router.yaml"]
    assert (
        "complexity_threshold: 0.7" in router and "timeout_seconds: 30" in router and "fallback_enabled: true" in router
    )
    release = run.named("kubernetes:helm.sh/v3:Release", "monitoring").inputs
    assert release["chart"] == "kube-prometheus-stack"
    assert release["values"]["prometheus"]["prometheusSpec"]["retention"] == "15d"
    backup = run.named("kubernetes:batch/v1:CronJob", "xiaozhi-cloud/backup").inputs
    assert backup["spec"]["schedule"] == "0 2 * * *"
    script = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "--keep-within 7d" in script
    env = backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "RESTIC_REPOSITORY", "value": "s3:s3.amazonaws.com/xiaozhi-backups"} in env


def test_registered_objects_are_the_manifests_builder_objects(
    stack_runs: dict[str, StackRun], example_fleet: Fleet
) -> None:
    """One source: what Pulumi registers equals what `xzctl render manifests` writes (plus secret values)."""
    for target, run in stack_runs.items():
        endpoint = CLOUD_ENDPOINT if target != "cloud" else None
        built = {
            (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
            for o in target_objects(example_fleet, target, None, endpoint).objects()
        }
        registered = {}
        for obj in run.kubernetes_objects():
            obj.pop("stringData", None)
            registered[(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        assert registered.keys() == built.keys()
        for key, obj in built.items():
            assert json.loads(dumps(registered[key])) == json.loads(dumps(obj)), key


def test_registered_objects_validate_strictly_against_kubernetes_1_30(stack_runs: dict[str, StackRun]) -> None:
    checked, custom = 0, 0
    for run in stack_runs.values():
        for obj in run.kubernetes_objects():
            if obj["apiVersion"].startswith("monitoring.coreos.com"):
                custom += 1  # custom resources: see tests/manifests/test_validate.py
                continue
            validate_strict(obj)
            checked += 1
    # 3 regions x (ServiceMonitor + PrometheusRule) + the orchestrator's ServiceMonitor
    assert (checked, custom) == (sum(len(r.kubernetes_objects()) for r in stack_runs.values()) - 7, 7)


def test_a_canary_pin_adds_a_one_replica_canary_beside_stable(
    pulumi_mocks: RecordingMocks, example_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XIAOZHI_AUTH_KEY", AUTH_KEY)
    canary = "registry.xiaozhi.example/inference/asr:1.4.0"
    pins = spec_pins(example_fleet).with_pin(
        "sh-edge-01", "asr", ServicePin(stable="registry.xiaozhi.example/inference/asr:2.2.0", canary=canary)
    )
    config = {**stack_config("shanghai"), PINS_CONFIG: json.dumps(pins.to_json())}
    run = StackRun("shanghai", pulumi_mocks.run(config, list(CONFIG_SECRETS)))
    stable = run.named(DEPLOYMENT, "xiaozhi-shanghai/sh-edge-01-asr").inputs
    rec = run.named(DEPLOYMENT, "xiaozhi-shanghai/sh-edge-01-asr-canary").inputs
    assert rec["spec"]["replicas"] == 1 and stable["spec"]["replicas"] == 6
    assert rec["spec"]["selector"]["matchLabels"]["track"] == "canary"
    assert stable["spec"]["selector"]["matchLabels"]["track"] == "stable"
    # the pin names the tag; the Deployment pulls it by the lock's digest and keeps the tag as the image label
    assert _container(rec)["image"] == load_catalog().by_digest(canary) != canary
    assert {"name": "XZ_IMAGE", "value": canary} in _container(rec)["env"]
    service = run.named("kubernetes:core/v1:Service", "xiaozhi-shanghai/sh-edge-01-asr").inputs
    assert "track" not in service["spec"]["selector"]  # the Service sends traffic to both tracks
    assert not [r for r in run.of_type(DEPLOYMENT) if r.name == "xiaozhi-shanghai/sh-edge-02-asr-canary"]


def test_a_missing_secret_fails_before_anything_is_registered(
    pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XIAOZHI_AUTH_KEY", raising=False)
    before = len(pulumi_mocks.resources)
    with pytest.raises(BadInputError, match="XIAOZHI_AUTH_KEY"):
        pulumi_mocks.run(stack_config("beijing"), list(CONFIG_SECRETS))
    assert len(pulumi_mocks.resources) == before


def test_an_unknown_region_is_refused(pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XIAOZHI_AUTH_KEY", AUTH_KEY)
    with pytest.raises(BadInputError, match="chengdu"):
        pulumi_mocks.run(stack_config("chengdu"), list(CONFIG_SECRETS))


def test_components_expose_typed_outputs(
    pulumi_mocks: RecordingMocks, example_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pulumi

    from xzctl.provision.components import CloudOrchestrator, EdgeNode
    from xzctl.provision.program import build

    monkeypatch.setenv("XIAOZHI_AUTH_KEY", AUTH_KEY)
    seen: dict[str, object] = {}

    def edge() -> pulumi.Output[None]:
        units = build(example_fleet, "guangzhou", None, pulumi.Config("xzctl"))
        node = next(u for u in units if isinstance(u, EdgeNode))
        return pulumi.Output.all(node.gpu_requests, node.replicas).apply(
            lambda v: seen.update(gpus=v[0], replicas=v[1])
        )

    def cloud() -> pulumi.Output[None]:
        units = build(example_fleet, "cloud", None, pulumi.Config("xzctl"))
        orchestrator = next(u for u in units if isinstance(u, CloudOrchestrator))
        return orchestrator.endpoint.apply(lambda v: seen.update(endpoint=v))

    pulumi_mocks.run(stack_config("guangzhou"), list(CONFIG_SECRETS), edge)
    pulumi_mocks.run(stack_config("cloud"), list(CONFIG_SECRETS), cloud)
    assert seen["gpus"] == 6 * 1 + 4 * 1 + 1 * 2  # asr + tts + llm slots on gz-edge-01
    assert seen["replicas"] == {
        "gz-edge-01-xiaozhi-server": 4,  # one server process per 4 of its 16 cores
        "gz-edge-01-vad": 4,
        "gz-edge-01-asr": 6,
        "gz-edge-01-tts": 4,
        "gz-edge-01-llm": 1,
    }
    assert seen["endpoint"] == "https://cloud.xiaozhi.example/v1"


def test_resource_count_matches_what_registers(stack_runs: dict[str, StackRun], example_fleet: Fleet) -> None:
    """Progress shows done/total with this total: the mocks record every resource but the root stack."""
    from xzctl.provision.program import resource_count

    for target, run in stack_runs.items():
        assert len(run.resources) + 1 == resource_count(target_objects(example_fleet, target)), target


def test_the_inline_program_registers_what_the_config_program_does(
    pulumi_mocks: RecordingMocks, stack_runs: dict[str, StackRun], example_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Automation API's program, closed over the loaded fleet and objects, registers the same resources."""
    from xzctl.provision.program import inline_program

    monkeypatch.setenv("XIAOZHI_AUTH_KEY", AUTH_KEY)
    for target in ("guangzhou", "cloud"):
        objects = target_objects(example_fleet, target)
        recorded = pulumi_mocks.run(
            stack_config(target), list(CONFIG_SECRETS), inline_program(example_fleet, target, None, objects)
        )
        assert sorted((r.typ, r.name, dumps(r.inputs)) for r in recorded) == sorted(
            (r.typ, r.name, dumps(r.inputs)) for r in stack_runs[target].resources
        )
