"""Start, inspect and stop a local sandbox: the fleet simulator plus a real Prometheus scraping it.

Both processes run in their own session (process group) so that `down` can stop each with every
child it has, and so that a Ctrl-C in the terminal after `up` does not take them down half-way.
Their pids (with process start times, so a recycled pid is never signalled), URLs and temp dirs are
in `<state dir>/sandbox/state.json`. Every wait is bounded; a failed start stops whatever it had
started and removes its temp dirs before raising.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from xzctl import reaper
from xzctl.errors import BadInputError, ConflictError, UnknownStateError
from xzctl.metrics import contract as c
from xzctl.sandbox.processes import STOP_TIMEOUT_SECONDS, alive, spawn, stop_group, wait_until
from xzctl.sandbox.prometheus import (
    HTTP_TIMEOUT_SECONDS,
    backfill_history,
    find_prometheus,
    run_prometheus,
    tsdb_dir,
)
from xzctl.sandbox.realnode import start_real_node, stop_real_node, stop_recorded_real_node
from xzctl.sandbox.thanos import QUERY, RegionStack, find_thanos, process_names, regions_with_nodes, start_regions
from xzctl.spec.models import Fleet
from xzctl.state import Claims, atomic_write
from xzctl.state import proc_start as _start_time
from xzctl.state import state_dir as default_state_dir

STATE_FILE = "state.json"
MIN_SCRAPE_SECONDS = 0.5  # sub-second scrapes let short canary intervals (benchmarks) measure a rate sooner


class SandboxAlreadyUpError(ConflictError):
    """`up` while a sandbox runs: says where it is instead of starting a second one."""

    def __init__(self, info: SandboxInfo) -> None:
        super().__init__(f"sandbox already up: Prometheus {info.prometheus_url}", hint="`xzctl sandbox down` first")
        self.info = info


@dataclass
class SandboxInfo:
    prometheus_url: str
    simulator_url: str
    state_dir: Path
    pids: dict[str, int]
    fleet_path: str = ""
    nodes: int = 0
    seed: int = 0
    scrape_interval_seconds: float = 10
    started_at: float = 0.0
    work_dir: str = ""
    start_times: dict[str, int] = field(default_factory=dict)
    history: dict[str, Any] | None = None
    real_node: dict[str, Any] | None = None  # realnode.RealNode.to_json(): services, pids, containers
    kubeconfig: str = ""  # with --kubernetes: the sandbox cluster's
    # With --per-region-prometheus: Thanos Query's URL (also `prometheus_url`, what commands read) and each region's
    # Prometheus and sidecar (thanos.RegionStack.to_json()).
    global_url: str = ""
    regions: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxInfo:
        return cls(**{**data, "state_dir": Path(data["state_dir"])})

    def alive(self) -> dict[str, bool]:
        return {name: alive(pid, self.start_times.get(name)) for name, pid in self.pids.items()}

    @property
    def serving(self) -> str:
        """The process that answers `prometheus_url`."""
        return QUERY if self.global_url else "prometheus"


def _sandbox_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "sandbox"


def _load(fleet_path: str | Path | None, scale: int | None, seed: int, work: Path) -> tuple[Fleet, Path]:
    from xzctl.spec import load_fleet

    if scale is None:
        loaded = load_fleet(fleet_path)
        return loaded.fleet, Path(loaded.source).resolve()
    from xzctl.spec.generate import generate_fleet_document

    # 150 devices per node minus a seeded jitter: 1000 nodes carry about 145k devices.
    doc = generate_fleet_document(scale, devices_per_node=150, seed=seed)
    path = work / f"fleet-{scale}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_fleet(path).fleet, path


# --- the API ---------------------------------------------------------------------------------


def _read_state(state_dir: Path) -> SandboxInfo | None:
    path = _sandbox_dir(state_dir) / STATE_FILE
    try:
        return SandboxInfo.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise UnknownStateError(f"unreadable sandbox state {path}: {exc}", hint=f"remove {path}") from exc


def start_sandbox(
    fleet_path: str | Path | None,
    state_dir: str | Path,
    *,
    scrape_interval_seconds: float = 10,
    seed: int = 0,
    history: timedelta | None = None,
    scale: int | None = None,
    prometheus_bin: str | None = None,
    port: int = 0,
    force: bool = False,  # start although an unfinished rollout deploys to the previous sandbox
    real_node: str | None = None,
    kubernetes: bool = False,
    xiaozhi_source: str | Path | None = None,
    per_region_prometheus: bool = False,
    server_processes: int | None = None,
) -> SandboxInfo:
    """Start the simulator and Prometheus; return where they listen. Raises when one already runs.

    `per_region_prometheus`: a Prometheus per region with a Thanos sidecar each, and Thanos Query as the global
    URL commands read (xzctl.sandbox.thanos).

    `real_node` runs that edge node's VAD/ASR/TTS for real beside the simulated ones (see realnode.py), with
    `xiaozhi_source` (the upstream server directory) also the upstream xiaozhi server (xzctl.sandbox.xiaozhi),
    `server_processes` of them behind a balancer (default: the node's, scaled to this machine's cores);
    `kubernetes` also starts a local cluster the simulator follows (xzctl.sandbox.kubernetes)."""
    state_dir = Path(state_dir)
    Claims(state_dir, "sandbox").refuse_unless(force, "the previous sandbox")
    _check_options(scrape_interval_seconds, history, port)
    running = sandbox_status(state_dir)
    if running is not None and all(running.alive().values()):
        raise SandboxAlreadyUpError(running)
    prometheus, promtool = find_prometheus(prometheus_bin)
    binaries = _kubernetes_binaries() if kubernetes else {}
    thanos = find_thanos() if per_region_prometheus else None
    if running is not None:
        stop_sandbox(state_dir)  # half-dead leftovers of a crashed run
    box = _sandbox_dir(state_dir)
    try:
        box.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="run-", dir=box))
    except OSError as exc:
        raise BadInputError(
            f"cannot write the sandbox state dir {box}: {exc.strerror}",
            hint="pick another with --state-dir DIR or $XZCTL_STATE_DIR",
        ) from exc
    procs: list[subprocess.Popen[bytes]] = []
    real = None
    try:
        fleet, fleet_file = _load(fleet_path, scale, seed, work)
        if real_node:
            real = start_real_node(
                fleet,
                real_node,
                state_dir=state_dir,
                log_dir=work / "real-node",
                xiaozhi_source=xiaozhi_source,
                server_processes=server_processes,
            )
        # Prometheus makes its storage dir; promtool, backfilling first, does too.
        storages = {r: tsdb_dir(work, r if thanos else None) for r in regions_with_nodes(fleet)}
        backfilled = (
            backfill_history(fleet_file, promtool, storages, work, seed=seed, history=history) if history else None
        )
        ready = work / "simulator.port"
        sim_log = work / "simulator.log"
        argv = [sys.executable, "-m", "xzctl.simulator", "--fleet", str(fleet_file), "--port", str(port)]
        procs.append(spawn([*argv, "--seed", str(seed), "--ready-file", str(ready)], sim_log))
        sim_port = int(wait_until("simulator", lambda: ready.is_file() and ready.read_text(), procs[0], sim_log))
        simulator_url = f"http://127.0.0.1:{sim_port}"
        prometheus_url, stacks = _monitoring(
            prometheus,
            thanos,
            fleet,
            work,
            procs,
            sim_port=sim_port,
            scrape_interval_seconds=scrape_interval_seconds,
            history=history,
            extra_targets=real.scrape_targets() if real is not None else [],
        )
        names = ["simulator", *(process_names(stacks) if stacks else ["prometheus"])]
        pids = {name: proc.pid for name, proc in zip(names, procs, strict=True)}
        info = SandboxInfo(
            prometheus_url=prometheus_url,
            simulator_url=simulator_url,
            state_dir=state_dir,
            pids=pids,
            fleet_path=str(fleet_file),
            nodes=len(fleet.edge_nodes()),
            seed=seed,
            scrape_interval_seconds=scrape_interval_seconds,
            started_at=time.time(),
            work_dir=str(work),
            start_times={name: _start_time(pid) or 0 for name, pid in pids.items()},
            history=backfilled,
            real_node=real.to_json() if real else None,
            global_url=prometheus_url if thanos else "",
            regions={region: stack.to_json() for region, stack in stacks.items()},
        )
        if kubernetes:
            from xzctl.sandbox.kubernetes import start_cluster

            cluster = start_cluster(fleet, work, procs, binaries, simulator_url)
            info.kubeconfig = str(cluster.kubeconfig)
            info.pids |= cluster.pids
            info.start_times |= cluster.start_times
        atomic_write(box / STATE_FILE, json.dumps(info.to_json(), indent=2))
        return info
    except BaseException:
        # fail closed: nothing keeps running, nothing is left behind
        if real is not None:
            stop_real_node(real)
        for proc in reversed(procs):
            stop_group(proc.pid, None)
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        shutil.rmtree(work, ignore_errors=True)
        raise


def _monitoring(
    prometheus: str,
    thanos: str | None,
    fleet: Fleet,
    work: Path,
    procs: list[subprocess.Popen[bytes]],
    *,
    sim_port: int,
    scrape_interval_seconds: float,
    history: timedelta | None,
    extra_targets: list[dict[str, Any]],
) -> tuple[str, dict[str, RegionStack]]:
    """The one Prometheus (its URL, no stacks), or with `thanos` a Prometheus and sidecar per region under Thanos
    Query (its URL and the regions' stacks)."""
    if thanos:
        return start_regions(
            thanos,
            prometheus,
            fleet,
            work,
            procs,
            sim_port=sim_port,
            scrape_interval_seconds=scrape_interval_seconds,
            history=history,
            extra_targets=extra_targets,
        )
    url = run_prometheus(
        prometheus,
        fleet,
        work,
        storage=tsdb_dir(work),
        procs=procs,
        sim_port=sim_port,
        scrape_interval_seconds=scrape_interval_seconds,
        history=history,
        extra_targets=extra_targets,
    )
    return url, {}


def _check_options(scrape_interval_seconds: float, history: timedelta | None, port: int) -> None:
    if not MIN_SCRAPE_SECONDS <= scrape_interval_seconds <= 300:
        raise BadInputError(f"scrape interval must be {MIN_SCRAPE_SECONDS:g}..300 seconds")
    if history is not None and history.total_seconds() <= 0:
        raise BadInputError("history must be a positive duration like 7d")
    if not 0 <= port <= 65535:
        raise BadInputError("port must be 0..65535 (0: any free port)")


def _kubernetes_binaries() -> dict[str, str]:
    from xzctl.sandbox.kubernetes import find_binaries

    return find_binaries()


def sandbox_status(state_dir: str | Path) -> SandboxInfo | None:
    """The recorded sandbox (whether or not its processes still run), or None when there is none."""
    return _read_state(Path(state_dir))


def stop_sandbox(state_dir: str | Path) -> None:
    """Stop every process the sandbox started (each with its whole session) and remove its temp dirs; returns when
    each is gone. Last started first: the follower and kwok before the API server, the API server before etcd."""
    state_dir = Path(state_dir)
    info = _read_state(state_dir)
    if info is None:
        return
    stopped = [
        p
        for name, pid in reversed(info.pids.items())
        for p in stop_group(pid, info.start_times.get(name), collect=False)
    ]
    reaper.wait_collected(stopped)  # once for all: PID 1 may collect orphans only every few seconds
    if info.real_node:
        stop_recorded_real_node(info.real_node)
    if info.work_dir:
        shutil.rmtree(info.work_dir, ignore_errors=True)
    (_sandbox_dir(state_dir) / STATE_FILE).unlink(missing_ok=True)


def record_real_node(state_dir: str | Path, record: dict[str, Any]) -> None:
    """Replace the running sandbox's real-node record (a rollout started or stopped some of its processes), so
    `sandbox down` stops what runs now."""
    info = _read_state(Path(state_dir))
    if info is None:
        raise UnknownStateError(f"no sandbox in {state_dir}", hint="xzctl sandbox up --real-node NODE")
    info.real_node = record
    atomic_write(_sandbox_dir(Path(state_dir)) / STATE_FILE, json.dumps(info.to_json(), indent=2))


def current_prometheus_url(state_dir: str | Path | None = None) -> str | None:
    """The running sandbox's Prometheus URL, for commands that default to it; None when not running."""
    try:
        info = _read_state(Path(state_dir) if state_dir is not None else default_state_dir())
    except UnknownStateError:
        return None
    if info is None or not info.alive().get(info.serving, False):
        return None
    return info.prometheus_url


def target_health(info: SandboxInfo) -> dict[str, Any]:
    """Scrape health per edge node from Prometheus' targets API: {node: {health, last_error, ...}}."""
    try:
        response = requests.get(f"{info.prometheus_url}/api/v1/targets", timeout=HTTP_TIMEOUT_SECONDS)
        response.raise_for_status()
        active = response.json()["data"]["activeTargets"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise UnknownStateError(f"cannot read targets from {info.prometheus_url}: {exc}") from exc
    return {
        t["labels"].get(c.NODE, t["labels"].get("instance", "?")): {
            "region": t["labels"].get(c.REGION, ""),
            "health": t.get("health", "unknown"),
            "last_error": t.get("lastError", ""),
            "last_scrape": t.get("lastScrape", ""),
        }
        for t in active
    }
