"""The objects the sandbox's cluster starts with: fake nodes from the fleet spec, the CRDs the stacks' custom
resources need, and a default storage class with volumes for every claim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xzctl.manifests.edge import volume_claims
from xzctl.manifests.k8s import NODE_LABEL, REGION_LABEL
from xzctl.spec.models import Fleet

KWOK_ANNOTATION = "kwok.x-k8s.io/node"  # kwok manages the nodes carrying it (kwok.x-k8s.io/node=fake)
# Pre-made PersistentVolumes: one per claim of the fleet's objects, and spare ones for what tests and an operator
# apply beside them (the example's 15 claims had 32 before the count followed the fleet).
SPARE_VOLUMES = 16
VOLUME_SIZE = "2Ti"
CLOUD_NODE_PREFIX = "cloud-gpu-"


def fake_nodes(fleet: Fleet) -> list[dict[str, Any]]:
    """One node per edge node (its labels, CPU, memory and GPU slots), and the cloud's GPU servers."""

    def node(
        name: str, labels: dict[str, str], cpu: int, memory_gb: int, gpus: int, *, taints: list[dict[str, str]]
    ) -> dict[str, Any]:
        capacity = {"cpu": str(cpu), "memory": f"{memory_gb}Gi", "pods": "250", "nvidia.com/gpu": str(gpus)}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_ANNOTATION: "fake"},
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok", **labels},
            },
            "spec": {"taints": taints},
            "status": {"capacity": capacity, "allocatable": capacity},
        }

    out = [
        node(
            n.id,
            {NODE_LABEL: n.id, REGION_LABEL: n.region},
            n.capacity.cpu_cores,
            n.capacity.memory_gb,
            n.capacity.gpu.slots,
            # Edge and cloud share the sandbox's one cluster; in production the cloud's pods (no node selector)
            # never see an edge node. A soft taint keeps them off; edge pods are pinned to their node anyway.
            taints=[{"key": NODE_LABEL, "value": n.id, "effect": "PreferNoSchedule"}],
        )
        for n in fleet.edge_nodes()
    ]
    servers = fleet.cloud.gpu_servers
    # The cloud's CPU pods (router, object store, jobs) land on the GPU servers too: each has room for them.
    out += [
        node(f"{CLOUD_NODE_PREFIX}{i}", {}, 128, 1024, servers.gpus_per_server, taints=[]) for i in range(servers.count)
    ]
    return out


def custom_resource_definitions() -> list[dict[str, Any]]:
    """ServiceMonitor and PrometheusRule, schema-less: the sandbox stores them, nothing acts on them."""
    out = []
    for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules")):
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.monitoring.coreos.com"},
                "spec": {
                    "group": "monitoring.coreos.com",
                    "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    ],
                },
            }
        )
    return out


def storage_objects(fleet: Fleet, folder: Path) -> list[dict[str, Any]]:
    """A default StorageClass without a provisioner and volumes for every claim of `fleet` (controller-manager binds
    claims)."""
    cls = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Retain",
    }
    volumes = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"sandbox-pv-{i:03d}"},
            "spec": {
                "capacity": {"storage": VOLUME_SIZE},
                "accessModes": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"],
                "storageClassName": "standard",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(folder / f"pv-{i:03d}")},
            },
        }
        for i in range(volume_claims(fleet) + SPARE_VOLUMES)
    ]
    return [cls, *volumes]
