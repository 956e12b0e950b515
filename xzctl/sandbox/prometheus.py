"""The sandbox's Prometheus: found on PATH, configured to scrape every edge node of the simulator (or, one per
region, that region's; and the fleet's own alert rules), started on a free port it is proven to own, and backfilled
with history by promtool, each region's in parallel."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import requests
import yaml

from xzctl.alerts import rules_file
from xzctl.errors import ExternalToolError
from xzctl.metrics import contract as c
from xzctl.sandbox.processes import STOP_TIMEOUT_SECONDS, free_port, http_ok, spawn, stop_group, tail, wait_until
from xzctl.simulator.history import coarsest_step
from xzctl.spec.models import Fleet

RULES_FILE = "rules.yml"
INSTALL_HINT = "install it: apt-get install prometheus (Debian/Ubuntu), or pass --prometheus-bin PATH"
HTTP_TIMEOUT_SECONDS = 3.0
PORT_ATTEMPTS = 3
DEFAULT_LOOKBACK_SECONDS = 300  # Prometheus' --query.lookback-delta
BACKFILL_TIMEOUT_SECONDS = 900  # one region's history generation, then its promtool run


def _our_prometheus(url: str, storage: Path) -> bool:
    """Ready, and ours: a port picked a moment ago may meanwhile serve another sandbox's Prometheus."""
    try:
        flags = requests.get(f"{url}/api/v1/status/flags", timeout=HTTP_TIMEOUT_SECONDS).json()["data"]
        return bool(flags.get("storage.tsdb.path") == str(storage) and http_ok(f"{url}/-/ready", HTTP_TIMEOUT_SECONDS))
    except (requests.RequestException, ValueError, KeyError):
        return False


def start_listening(
    what: str,
    argv: Callable[[int], list[str]],
    ready: Callable[[str], bool],
    log: Path,
    procs: list[subprocess.Popen[bytes]],
) -> str:
    """Start `argv(port)` on a free port until `ready(url)`; pick another when the port (or another one the
    process picked) was taken between the pick and the bind. Its URL; the process is appended to `procs`."""
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        proc = spawn(argv(port), log)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(what, lambda u=url: ready(u), proc, log)
            return url
        except ExternalToolError:
            if attempt + 1 == PORT_ATTEMPTS or "address already in use" not in tail(log):
                raise
            procs.remove(proc)
            stop_group(proc.pid, None)
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    raise ExternalToolError(f"{what} found no free port in {PORT_ATTEMPTS} attempts")


def find_prometheus(explicit: str | None) -> tuple[str, str | None]:
    """(prometheus, promtool or None); the promtool next to the chosen prometheus comes first."""
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ExternalToolError(f"--prometheus-bin {explicit} is not an executable file", hint=INSTALL_HINT)
        prometheus = str(path)
    else:
        found = shutil.which("prometheus")
        if found is None:
            raise ExternalToolError("prometheus not found on PATH", hint=INSTALL_HINT)
        prometheus = found
    sibling = Path(prometheus).with_name("promtool")
    promtool = str(sibling) if sibling.is_file() else shutil.which("promtool")
    return prometheus, promtool


def _duration(seconds: float) -> str:
    """Prometheus' duration form: whole seconds as `10s`, a sub-second interval in milliseconds (`500ms`)."""
    return f"{seconds:g}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


def scrape_config(
    fleet: Fleet, simulator_port: int, interval_seconds: float, region: str | None = None
) -> dict[str, Any]:
    """One static target per edge node (of `region` when given), labelled region/node, so every node is a target at
    once. A region's Prometheus also carries the external label region=..., which Thanos uses to route queries."""
    targets = [
        {
            "targets": [f"127.0.0.1:{simulator_port}"],
            "labels": {
                "__metrics_path__": f"/nodes/{node.id}/metrics",
                "instance": node.id,
                c.REGION: node.region,
                c.NODE: node.id,
            },
        }
        for node in fleet.edge_nodes()
        if region is None or node.region == region
    ]
    interval = _duration(interval_seconds)
    return {
        "global": {
            "scrape_interval": interval,
            "evaluation_interval": interval,
            **({"external_labels": {c.REGION: region}} if region else {}),
        },
        "scrape_configs": [
            {
                "job_name": c.EDGE_JOB,
                "scrape_interval": interval,
                "scrape_timeout": _duration(min(interval_seconds, 10)),
                "static_configs": targets,
            }
        ],
    }


def backfill_history(
    fleet_file: Path, promtool: str | None, storages: dict[str, Path], work: Path, *, seed: int, history: timedelta
) -> dict[str, Any]:
    """Backfill `history` of each region into its storage (`storages`: region -> TSDB dir; one dir for all with a
    single Prometheus), as many regions at once as there are cores, each at the step its own size allows
    (xzctl.simulator.history)."""
    if promtool is None:
        raise ExternalToolError("promtool not found (needed for --history)", hint=INSTALL_HINT)
    end = time.time()
    one = partial(
        _backfill_region, fleet_file=fleet_file, promtool=promtool, work=work, seed=seed, end=end, span=history
    )
    # Threads that each wait on processes: the history generator and promtool do the work.
    with ThreadPoolExecutor(max_workers=max(1, min(len(storages), os.cpu_count() or 1))) as pool:
        stats = list(pool.map(one, storages, storages.values()))
    return {
        "start": min(s["start"] for s in stats),
        "end": end,
        "step_seconds": max(s["step_seconds"] for s in stats),
        "samples": sum(s["samples"] for s in stats),
        "regions": len(stats),
    }


def _run(what: str, argv: list[str]) -> str:
    """Run a backfill step (bounded); its stdout, or ExternalToolError with the end of its stderr."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=BACKFILL_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ExternalToolError(f"{what} took over {BACKFILL_TIMEOUT_SECONDS // 60} minutes") from exc
    if result.returncode != 0:
        raise ExternalToolError(f"{what} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def _backfill_region(
    region: str, storage: Path, *, fleet_file: Path, promtool: str, work: Path, seed: int, end: float, span: timedelta
) -> dict[str, Any]:
    source = work / f"history-{region}.om"
    generate = [sys.executable, "-m", "xzctl.simulator.history", "--fleet", str(fleet_file), "--region", region]
    generate += ["--out", str(source), "--seed", str(seed), "--end", repr(end), "--span", repr(span.total_seconds())]
    try:
        stats: dict[str, Any] = json.loads(_run(f"the history of {region}", generate))
        # day-long blocks: 5x faster than the 2h default, and a sandbox never compacts them away early
        blocks = [promtool, "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h"]
        _run(f"promtool tsdb create-blocks-from ({region})", [*blocks, str(source), str(storage)])
    finally:
        source.unlink(missing_ok=True)
    return stats


def tsdb_dir(work: Path, region: str | None = None) -> Path:
    """A sandbox Prometheus's storage under `work`: the one Prometheus's, or with `region` that region's own. The
    backfill writes where the Prometheus then reads, so both take it from here."""
    return work / (f"tsdb-{region}" if region else "tsdb")


def run_prometheus(
    prometheus: str,
    fleet: Fleet,
    work: Path,
    *,
    storage: Path,
    procs: list[subprocess.Popen[bytes]],
    sim_port: int,
    scrape_interval_seconds: float,
    history: timedelta | None,
    extra_targets: list[dict[str, Any]],
    region: str | None = None,
) -> str:
    """Write the sandbox's Prometheus config (the fleet's own alert rules included) and start it (scraping only
    `region`'s edge nodes when given); its URL."""
    # The fleet's own alert rules run in the sandbox too: /alerts shows what would page in production.
    if not (work / RULES_FILE).is_file():
        (work / RULES_FILE).write_text(yaml.safe_dump(rules_file(fleet), sort_keys=False))
    name = f"prometheus-{region}" if region else "prometheus"
    config = work / f"{name}.yml"
    prometheus_config = {**scrape_config(fleet, sim_port, scrape_interval_seconds, region), "rule_files": [RULES_FILE]}
    prometheus_config["scrape_configs"][0]["static_configs"] += extra_targets
    config.write_text(yaml.safe_dump(prometheus_config, sort_keys=False))
    retention_days = max(15, int((history or timedelta()).total_seconds() // 86400) + 2)
    argv = [
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage}",
        f"--storage.tsdb.retention.time={retention_days}d",
        "--log.level=warn",
    ]
    if history:
        argv.append(f"--query.lookback-delta={lookback_seconds(fleet, history, region)}s")
    return start_listening(
        name,
        lambda port: [*argv, f"--web.listen-address=127.0.0.1:{port}"],
        lambda url: _our_prometheus(url, storage),
        work / f"{name}.log",
        procs,
    )


def lookback_seconds(fleet: Fleet, history: timedelta, region: str | None = None) -> int:
    """How far back an instant query over `history` (of `region`, else every region) must look for a sample.

    Backfilled samples lie a step apart and carry no staleness markers: an instant query (the forecast's devices
    history, a reading hours ago) finds one only within the lookback, 5 m by default. Live series are unaffected: a
    failed scrape or a dropped target ends them with a staleness marker."""
    return max(DEFAULT_LOOKBACK_SECONDS, coarsest_step(fleet, history.total_seconds(), region))


def rescrape(work: Path, pid: int, add: list[dict[str, Any]], remove: set[str]) -> None:
    """Change the edge job's static targets of a running sandbox Prometheus (`pid`, its config in `work`): add
    these, drop those whose instance is in `remove`; a SIGHUP makes it reload."""
    path = work / "prometheus.yml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    job = config["scrape_configs"][0]
    kept = [t for t in job["static_configs"] if t.get("labels", {}).get("instance") not in remove]
    job["static_configs"] = kept + add
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    os.kill(pid, signal.SIGHUP)
