"""Generate large fleet spec documents from the bundled example, for benchmarks, sandboxes and tests.

The result is the raw YAML-shaped dict a user would write (node profiles, regions, cost), so it goes
through the same loader as a hand-written spec: `build_fleet(generate_fleet_document(1000), {}, "gen")`.
"""

from __future__ import annotations

import copy
import math
import random
from functools import cache
from typing import Any

import yaml

from xzctl.errors import BadInputError, XzctlError
from xzctl.spec.load import bundled_example_path

# Regions of the bundled example first, then more Chinese cities; past these, numbered regions.
REGION_NAMES = (
    "beijing",
    "shanghai",
    "guangzhou",
    "shenzhen",
    "chengdu",
    "hangzhou",
    "wuhan",
    "xian",
    "nanjing",
    "chongqing",
)
PROFILE = "edge-standard"
MAX_GENERATED_NODES = 10_000


@cache
def _example() -> dict[str, Any]:
    loaded = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise XzctlError(f"bundled example {bundled_example_path()} is not a mapping", hint="reinstall xzctl")
    return loaded


def _region_name(index: int) -> str:
    return REGION_NAMES[index] if index < len(REGION_NAMES) else f"region-{index + 1:03d}"


def generate_fleet_document(
    nodes: int,
    devices_per_node: int = 140,
    seed: int = 0,
    *,
    regions: int | None = None,
    device_jitter: int = 10,
) -> dict[str, Any]:
    """A valid raw fleet spec with `nodes` edge nodes spread over `regions` regions.

    Each node gets `devices_per_node` devices minus a seeded jitter in [0, device_jitter], so the same
    seed gives the same fleet. Regions default to one per 50 nodes (at least 3, like the example).
    Capex and the device KPI follow the generated size so validation sees no stale totals.
    """
    base = _example()
    max_devices = int(base["node_profiles"][PROFILE]["capacity"]["max_devices"])
    if not 1 <= nodes <= MAX_GENERATED_NODES:
        raise BadInputError(f"nodes must be between 1 and {MAX_GENERATED_NODES:,}, got {nodes}")
    if not 1 <= devices_per_node <= max_devices:
        raise BadInputError(f"devices_per_node must be between 1 and {max_devices} (the profile's max_devices)")
    region_count = regions if regions is not None else max(3, math.ceil(nodes / 50))
    region_count = min(region_count, nodes)
    if region_count < 1:
        raise BadInputError("regions must be at least 1")
    rng = random.Random(seed)
    doc = copy.deepcopy(base)
    out_regions: dict[str, Any] = {}
    for r in range(region_count):
        name = _region_name(r)
        out_regions[name] = {
            "kubernetes": {"context": f"k3s-{name}"},
            "cross_region_failover": True,
            "edge_nodes": [],
        }
    names = list(out_regions)
    total = 0
    for i in range(nodes):
        r = i % region_count
        region = out_regions[names[r]]
        index = len(region["edge_nodes"]) + 1
        node_id = f"{names[r][:12]}-edge-{index:04d}"
        devices = max(0, devices_per_node - rng.randint(0, max(0, device_jitter)))
        total += devices
        region["edge_nodes"].append(
            {
                "id": node_id,
                "profile": PROFILE,
                "devices": devices,
                "public_hostname": f"{node_id}.xiaozhi.example",
                "host": {"address": f"{node_id}.mgmt.xiaozhi.example", "ssh_user": "xzops"},
            }
        )
    doc["regions"] = out_regions
    doc["metadata"]["name"] = f"generated-{nodes}"
    doc["kpis"]["throughput"]["concurrent_devices"] = max(total, 1)
    for item in doc["cost"]["capex"]:
        if item.get("kind") == "edge_server":
            item["quantity"] = nodes
    return doc
