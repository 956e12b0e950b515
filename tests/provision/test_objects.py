"""What the stacks of several targets deploy when they share one cluster (a lab, the sandbox, a migration)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from xzctl.errors import FleetSpecError
from xzctl.images import ImageRef, load_catalog
from xzctl.manifests.k8s import REGION_LABEL
from xzctl.provision.objects import CLOUD, target_objects, targets
from xzctl.spec import bundled_example_path
from xzctl.spec.load import build_fleet
from xzctl.spec.models import Fleet

# Cluster infrastructure every region brings along, as each region's own cluster needs it.
CLUSTER_SHARED = {("Namespace", None, "monitoring"), ("ConfigMap", "kube-system", "nvidia-device-plugin-config")}
CHART_NAMESPACES = {"monitoring", "logging"}  # where the Helm releases live (the cloud's log stores in logging)


def _key(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def _without_region_label(obj: dict[str, Any]) -> dict[str, Any]:
    labels = {k: v for k, v in obj["metadata"].get("labels", {}).items() if k != REGION_LABEL}
    return {**obj, "metadata": {**obj["metadata"], "labels": labels}}


def test_every_region_and_the_cloud_own_their_namespace(example_fleet: Fleet) -> None:
    namespaces = {t: target_objects(example_fleet, t).namespace for t in targets(example_fleet)}
    assert namespaces == {
        "beijing": "xiaozhi-beijing",
        "shanghai": "xiaozhi-shanghai",
        "guangzhou": "xiaozhi-guangzhou",
        CLOUD: "xiaozhi-cloud",
    }
    for target, namespace in namespaces.items():
        owned = [o for o in target_objects(example_fleet, target).objects() if _key(o) not in CLUSTER_SHARED]
        assert {o["metadata"].get("namespace", o["metadata"]["name"]) for o in owned} <= {namespace, *CHART_NAMESPACES}


def test_targets_sharing_a_cluster_never_overwrite_each_other(example_fleet: Fleet) -> None:
    owners: dict[tuple[str, str | None, str], list[tuple[str, dict[str, Any]]]] = {}
    for target in targets(example_fleet):
        for obj in target_objects(example_fleet, target).objects():
            owners.setdefault(_key(obj), []).append((target, obj))
    shared = {key: found for key, found in owners.items() if len(found) > 1}
    assert set(shared) == CLUSTER_SHARED
    for found in shared.values():
        # The same object from every region (its region label aside): whichever applies last changes nothing.
        assert len({str(_without_region_label(obj)) for _, obj in found}) == 1
        assert len({target for target, _ in found}) == len(found)  # once per target


def test_an_explicit_namespace_wins_and_a_too_long_default_is_refused() -> None:
    doc = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))
    doc["regions"]["beijing"]["kubernetes"]["namespace"] = "edge"
    assert build_fleet(doc, {}, "edited").regions["beijing"].kubernetes.namespace == "edge"
    doc["regions"]["r" * 60] = doc["regions"].pop("shanghai")
    with pytest.raises(FleetSpecError, match=r"set kubernetes\.namespace"):
        build_fleet(doc, {}, "edited")


def _images(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {})
    pods = [spec.get("template", {}).get("spec", {}), spec.get("jobTemplate", {}).get("spec", {}).get("template", {})]
    pods.append(pods[-1].get("spec", {}))
    return [c for pod in pods for key in ("containers", "initContainers") for c in pod.get(key, []) if "image" in c]


def test_every_catalog_image_is_pulled_by_the_lock_digest_and_every_other_is_external(example_fleet: Fleet) -> None:
    catalog = load_catalog()
    containers = [
        c for t in targets(example_fleet) for o in target_objects(example_fleet, t).objects() for c in _images(o)
    ]
    assert len(containers) > 50
    unpinned: set[str] = set()
    for container in containers:
        ref = ImageRef.parse(container["image"])
        image = catalog.by_repository(ref.repository)
        if image is None:
            assert catalog.external_source(container["image"]) is not None, container["image"]
        elif ref.digest is None:
            unpinned.add(image.info.name)
        else:
            release = image.release(str(ref.tag))
            assert release is not None and release.built is not None and release.digest == ref.digest
            assert container["imagePullPolicy"] == "IfNotPresent"
    # every catalog image the example runs has a built release (it runs no coordinator): all pinned by digest
    assert unpinned == set()
