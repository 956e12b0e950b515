"""The sandbox as sites run it (`xzctl sandbox up --per-region-prometheus`): one Prometheus per region, each with a
Thanos sidecar, and Thanos Query above them as the one global PromQL endpoint.

Each region's Prometheus scrapes only that region's edge nodes and carries the external label region=<name>; Thanos
Query sends a query only to the sidecars whose labels can match it, so a query narrowed to one region (what the checks
send, xzctl.prom.regions) is answered by that region's Prometheus alone. All on 127.0.0.1; thanos comes from
`scripts/engine.sh` (its cache, $XZCTL_ENGINE_BIN, or PATH).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from xzctl.errors import ExternalToolError
from xzctl.metrics import contract as c
from xzctl.sandbox.kubernetes import engine_bin_dir
from xzctl.sandbox.processes import free_port, wait_until
from xzctl.sandbox.prometheus import (
    DEFAULT_LOOKBACK_SECONDS,
    HTTP_TIMEOUT_SECONDS,
    lookback_seconds,
    run_prometheus,
    start_listening,
    tsdb_dir,
)
from xzctl.spec.models import Fleet

THANOS_HINT = "build it: bash scripts/engine.sh thanos (or put a thanos binary on PATH)"
QUERY = "thanos-query"
# Query checks its endpoints every 5 s; on a busy machine 14 sidecars take a few rounds to all answer.
QUERY_READY_SECONDS = 90.0


def find_thanos() -> str:
    """The thanos binary: the engine cache first, then PATH; ExternalToolError (exit 4) when there is none."""
    found = shutil.which("thanos", path=os.pathsep.join([str(engine_bin_dir()), os.environ.get("PATH", "")]))
    if found is None:
        raise ExternalToolError(f"thanos not found in {engine_bin_dir()} or on PATH", hint=THANOS_HINT)
    return found


@dataclass(frozen=True)
class RegionStack:
    """A region's Prometheus and its sidecar, as recorded in the sandbox state."""

    prometheus_url: str
    sidecar_url: str  # the sidecar's HTTP (readiness, its own metrics)
    sidecar_grpc: str  # host:port Thanos Query reads through

    def to_json(self) -> dict[str, str]:
        return {
            "prometheus_url": self.prometheus_url,
            "sidecar_url": self.sidecar_url,
            "sidecar_grpc": self.sidecar_grpc,
        }


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=HTTP_TIMEOUT_SECONDS).status_code == 200
    except requests.RequestException:
        return False


def start_sidecar(
    thanos: str, region: str, *, prometheus_url: str, storage: Path, work: Path, procs: list[subprocess.Popen[bytes]]
) -> RegionStack:
    """Start the region's sidecar (no object store: it serves the local TSDB) and wait until it is ready, which is
    once it has read its Prometheus' external labels."""
    grpc: dict[str, str] = {}

    def argv(port: int) -> list[str]:
        grpc["address"] = f"127.0.0.1:{free_port()}"
        return [
            thanos,
            "sidecar",
            f"--prometheus.url={prometheus_url}",
            f"--tsdb.path={storage}",
            f"--grpc-address={grpc['address']}",
            f"--http-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]

    url = start_listening(f"thanos sidecar {region}", argv, _ready, work / f"sidecar-{region}.log", procs)
    return RegionStack(prometheus_url, url, grpc["address"])


def store_regions(url: str) -> dict[str, str]:
    """The stores Thanos Query at `url` reaches, by their region label: region -> its last error ('' when healthy)."""
    try:
        stores = requests.get(f"{url}/api/v1/stores", timeout=HTTP_TIMEOUT_SECONDS).json()["data"]
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return {}
    return {
        labels[c.REGION]: store.get("lastError") or ""
        for kind in (stores or {}).values()
        for store in kind or []
        for labels in store.get("labelSets") or []
        if c.REGION in labels
    }


def start_query(
    thanos: str, stacks: dict[str, RegionStack], work: Path, procs: list[subprocess.Popen[bytes]], lookback: int
) -> str:
    """Start Thanos Query over the regions' sidecars (instant queries looking `lookback` seconds back, as the
    regions' Prometheus do); ready once it reaches every one of them. Its URL."""
    endpoints = [f"--endpoint={stack.sidecar_grpc}" for stack in stacks.values()]

    def argv(port: int) -> list[str]:
        grpc = f"--grpc-address=127.0.0.1:{free_port()}"
        query = [thanos, "query", f"--http-address=127.0.0.1:{port}", grpc, f"--query.lookback-delta={lookback}s"]
        return [*query, *endpoints, "--log.level=warn"]

    def ready(url: str) -> bool:
        healthy = {region for region, error in store_regions(url).items() if not error}
        return healthy >= set(stacks) and _ready(url)

    url = start_listening(QUERY, argv, _ready, work / f"{QUERY}.log", procs)
    wait_until(QUERY, lambda: ready(url), procs[-1], work / f"{QUERY}.log", timeout=QUERY_READY_SECONDS)
    return url


def start_regions(
    thanos: str,
    prometheus: str,
    fleet: Fleet,
    work: Path,
    procs: list[subprocess.Popen[bytes]],
    *,
    sim_port: int,
    scrape_interval_seconds: float,
    history: timedelta | None,
    extra_targets: list[dict[str, Any]],
) -> tuple[str, dict[str, RegionStack]]:
    """Each region's Prometheus (storage `tsdb_dir(work, region)`, backfilled already) and sidecar, then Thanos Query
    over them: (the global URL, the regions' stacks). Every process is appended to `procs` as it starts."""
    stacks: dict[str, RegionStack] = {}
    for region in regions_with_nodes(fleet):
        storage = tsdb_dir(work, region)
        url = run_prometheus(
            prometheus,
            fleet,
            work,
            storage=storage,
            procs=procs,
            sim_port=sim_port,
            scrape_interval_seconds=scrape_interval_seconds,
            history=history,
            extra_targets=[t for t in extra_targets if t["labels"].get(c.REGION) == region],
            region=region,
        )
        stacks[region] = start_sidecar(thanos, region, prometheus_url=url, storage=storage, work=work, procs=procs)
    lookback = lookback_seconds(fleet, history) if history else DEFAULT_LOOKBACK_SECONDS
    return start_query(thanos, stacks, work, procs, lookback), stacks


def regions_with_nodes(fleet: Fleet) -> list[str]:
    """The regions that have edge nodes (only they have metrics), in the spec's order."""
    have = {node.region for node in fleet.edge_nodes()}
    return [name for name in fleet.regions if name in have]


def process_names(stacks: dict[str, RegionStack]) -> list[str]:
    """The names the sandbox records the per-region processes by, in the order `start_regions` starts them."""
    return [name for region in stacks for name in (f"prometheus-{region}", f"sidecar-{region}")] + [QUERY]
