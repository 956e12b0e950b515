"""Every object of every target, validated against Kubernetes 1.30 (strict) and, for rules, by promtool.

Custom resources: PrometheusRule `spec` is a Prometheus rule file body, checked by the real `promtool
check rules`. ServiceMonitor has no schema available offline (the prometheus-operator CRDs are not
packaged here), so its schema check is a documented skip; its fields are asserted in test_edge.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.fixtures.kubernetes_schema import validate_strict
from xzctl.provision.objects import target_objects, targets
from xzctl.spec import Fleet

CUSTOM = "monitoring.coreos.com/v1"


def test_every_builtin_object_is_valid_kubernetes_1_30(example_fleet: Fleet) -> None:
    kinds: set[str] = set()
    for target in targets(example_fleet):
        for obj in target_objects(example_fleet, target).objects():
            if obj["apiVersion"] == CUSTOM:
                continue
            validate_strict(obj)
            kinds.add(obj["kind"])
    assert kinds >= {
        "Namespace",
        "Secret",
        "ConfigMap",
        "Deployment",
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Ingress",
        "PersistentVolumeClaim",
        "CronJob",
        "Job",
    }


def test_every_claim_template_is_applied_with_force(example_fleet: Fleet) -> None:
    """volumeClaimTemplates is an atomic list the API server defaults: without force, re-applying a create that an
    interrupted update left pending (after --recover) conflicts with its own earlier field manager."""
    templated = [
        obj
        for target in targets(example_fleet)
        for obj in target_objects(example_fleet, target).objects()
        if obj["kind"] == "StatefulSet" and obj["spec"].get("volumeClaimTemplates")
    ]
    assert {obj["metadata"]["name"] for obj in templated} >= {"object-store"}
    for obj in templated:
        assert obj["metadata"]["annotations"]["pulumi.com/patchForce"] == "true", obj["metadata"]["name"]


def test_a_broken_object_is_caught_by_the_strict_schema() -> None:
    """The validator is strict: an unknown field (a typo) is an error, not ignored."""
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {}, "datta": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(bad)


@pytest.mark.live
@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs the Debian prometheus package (promtool)")
def test_prometheus_rules_pass_promtool(example_fleet: Fleet, tmp_path: Path) -> None:
    checked = 0
    for region in example_fleet.regions:
        rules = [o for o in target_objects(example_fleet, region).objects() if o["kind"] == "PrometheusRule"]
        assert len(rules) == 1
        path = tmp_path / f"{region}.rules.yaml"
        path.write_text(yaml.safe_dump(rules[0]["spec"]), encoding="utf-8")
        done = subprocess.run(
            ["promtool", "check", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout
        checked += 1
    assert checked == len(example_fleet.regions)
