"""Policies (limits, probes, non-root, no plaintext secret, GPU slots), and the Pulumi policy pack."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fixtures.manifests import find
from tests.fixtures.pulumi_mocks import StackRun
from xzctl.manifests import policy
from xzctl.provision.objects import target_objects, targets
from xzctl.spec import Fleet

Obj = dict[str, Any]
POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"


@pytest.fixture(scope="module")
def beijing(example_fleet: Fleet) -> list[Obj]:
    return target_objects(example_fleet, "beijing").objects()


def test_every_target_passes_every_policy(example_fleet: Fleet) -> None:
    for target in targets(example_fleet):
        objects = target_objects(example_fleet, target).objects()
        assert policy.check_objects(objects) == [], target


def _broken(objs: list[Obj], kind: str, name: str) -> tuple[list[Obj], Obj]:
    objs = copy.deepcopy(objs)
    return objs, find(objs, kind, name)


def test_each_policy_catches_its_defect(beijing: list[Obj]) -> None:
    objs, dep = _broken(beijing, "Deployment", "bj-edge-01-asr")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    del container["resources"]["limits"]["memory"]
    del container["livenessProbe"]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    container["env"].append({"name": "REDIS_PASSWORD", "value": "hunter2"})
    found = {v.policy: v.message for v in policy.check_objects(objs)}
    assert found == {
        "resource-limits": "container asr: no limits for memory",
        "probes": "container asr: no livenessProbe",
        "non-root": "container asr: may escalate privileges",
        "no-plaintext-secret": "container asr: env REDIS_PASSWORD is a literal",
    }


def test_root_is_refused(beijing: list[Obj]) -> None:
    _, dep = _broken(beijing, "Deployment", "bj-edge-02-tts")
    dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("runAsNonRoot")
    assert [v.render() for v in policy.non_root(dep)] == [
        "non-root: Deployment/bj-edge-02-tts: container tts: may run as root"
    ]


def test_secrets_in_configmaps_and_manifests_are_refused(beijing: list[Obj]) -> None:
    objs, cm = _broken(beijing, "ConfigMap", "bj-edge-01-config")
    assert policy.no_plaintext_secret(cm) == []  # the server override holds a placeholder only
    cm["data"]["server.config.yaml"] = cm["data"]["server.config.yaml"].replace("你的${XIAOZHI_AUTH_KEY}", "s3cr3t-key")
    assert [v.message for v in policy.no_plaintext_secret(cm)] == ["server.config.yaml: auth_key holds a literal value"]
    secret = find(objs, "Secret", "xzctl-auth-key")
    secret["stringData"] = {"value": "s3cr3t-key"}
    assert [v.policy for v in policy.no_plaintext_secret(secret)] == ["no-plaintext-secret"]
    assert policy.no_plaintext_secret(secret, secret_data_allowed=True) == []


def test_batch_jobs_need_no_probes(example_fleet: Fleet) -> None:
    cloud = target_objects(example_fleet, "cloud").objects()
    backup = find(cloud, "CronJob", "backup")
    assert "livenessProbe" not in backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert policy.probes(backup) == []
    assert policy.resource_limits(backup) == []


def test_gpu_slots_count_every_replica_and_canary(beijing: list[Obj]) -> None:
    assert policy.gpu_slots(beijing) == []
    objs, asr = _broken(beijing, "Deployment", "bj-edge-03-asr")
    asr["spec"]["replicas"] = 10  # 10 asr + 4 tts + 2 llm = 16 slots = 2 GPUs x 8: still fits
    assert policy.gpu_slots(objs) == []
    canary = copy.deepcopy(asr)
    canary["metadata"]["name"] = "bj-edge-03-asr-canary"
    canary["spec"]["replicas"] = 1
    objs.append(canary)
    assert [v.render() for v in policy.gpu_slots(objs)] == [
        "gpu-slots: Node/bj-edge-03: pods request 17 GPU slots but the node has 2 GPUs x 8 time-slicing replicas = 16"
    ]
    config = find(objs, "ConfigMap", "bj-edge-03-config")
    config["metadata"]["annotations"]["xiaozhi.io/gpu-time-slicing-replicas"] = "1"
    assert policy.gpu_slots(objs)[0].message.endswith("2 GPUs x 1 time-slicing replicas = 2")


def _load_pack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("xzctl_policies", POLICY_DIR / "xzctl_policies.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["xzctl_policies"] = module
    spec.loader.exec_module(module)
    return module


# never skipped: scripts/test.sh installs pulumi-policy (without its protobuf pin)
def test_policy_pack_runs_the_same_policies_on_pulumi_resources(stack_runs: dict[str, StackRun]) -> None:
    import pulumi_policy

    pack = {p.name: p for p in _load_pack().policies()}
    assert set(pack) == {"resource-limits", "probes", "non-root", "no-plaintext-secret", "gpu-slots"}
    run = stack_runs["beijing"]
    violations: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        violations.append(f"{urn}: {message}" if urn else message)  # a resource policy names no urn

    timeouts = pulumi_policy.PolicyCustomTimeouts(0, 0, 0)
    opts = pulumi_policy.PolicyResourceOptions(False, [], None, [], timeouts, [])  # what a plain resource has
    resources = []
    for rec in run.resources:
        args = pulumi_policy.ResourceValidationArgs(rec.typ, rec.inputs, f"urn:{rec.name}", rec.name, opts, None)
        for name, p in pack.items():
            if name != "gpu-slots":
                p.validate(args, report)
        resources.append(
            pulumi_policy.PolicyResource(rec.typ, rec.inputs, f"urn:{rec.name}", rec.name, opts, None, None, [], {})
        )
    pack["gpu-slots"].validate(pulumi_policy.StackValidationArgs(resources), report)
    assert violations == []
    asr = next(
        copy.deepcopy(r)
        for r in run.resources
        if r.name == "xiaozhi-beijing/bj-edge-01-asr" and r.typ.endswith("Deployment")
    )
    asr.inputs["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    pack["probes"].validate(
        pulumi_policy.ResourceValidationArgs(asr.typ, asr.inputs, "urn:x", asr.name, opts, None), report
    )
    assert violations == ["container asr: no readinessProbe"]
