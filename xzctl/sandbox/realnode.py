"""A real node in the sandbox: one edge node's VAD, ASR and TTS run for real (from the built images, else from the
same package with this Python), fed by a load generator whose simulated devices speak known text, scored by word
error rate. Prometheus scrapes the services and the generator next to the simulated nodes, in the edge job with the
node's region and node labels, so alerts, capacity and the canary analysis read real inference for that node.
With the upstream source (`xiaozhi_source`), the node also runs the upstream xiaozhi server wired to those services
and to an LLM stand-in (xzctl.sandbox.xiaozhi): devices then speak the real protocol to it.

The devices and the xiaozhi server processes are the node's own counts scaled to this machine: count x local
cores / the node's cores, at least one (`server_processes` sets the count, e.g. to compare 1 against N).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xzctl import service_contract as sc
from xzctl.errors import BadInputError, ExternalToolError
from xzctl.images.build import stage_package
from xzctl.images.catalog import Catalog, ImageRef, load_catalog
from xzctl.images.run import RunningService, remove_containers, start_service, stop_service, wait_ready
from xzctl.metrics import contract as c
from xzctl.sandbox.balancer import MARK as BALANCER_MARK
from xzctl.sandbox.processes import free_port
from xzctl.spec.models import EdgeNode, Fleet

SERVICES = ("vad", "asr", "tts")
READY_TIMEOUT = 180.0
LOADGEN_TIMEOUT = 60.0
TURN_INTERVAL = 20.0  # seconds between a device's turns: a conversation turn, not a stream of requests
# command-line marks of the processes a real node starts (the xiaozhi server is known by its working directory)
OURS = (b"xz_inference", b"buildah", b"xzctl.sandbox.llm_standin", b"xzctl.loadtest", BALANCER_MARK.encode())
MAX_SERVER_PROCESSES = 8  # each upstream process holds ~300 MB and 30+ threads before its first device


def _scaled(count: int, node: EdgeNode, cores: int | None) -> int:
    local = cores or os.cpu_count() or 1
    return max(1, round(count * min(local, node.capacity.cpu_cores) / node.capacity.cpu_cores))


def scaled_devices(node: EdgeNode, cores: int | None = None) -> int:
    """The node's devices scaled to what this machine's cores carry (at least one device)."""
    return _scaled(node.devices, node, cores)


def scaled_processes(node: EdgeNode, cores: int | None = None) -> int:
    """The node's xiaozhi server processes scaled to this machine's cores (at least one)."""
    return _scaled(node.server_processes, node, cores)


@dataclass
class RealNode:
    node: str
    region: str
    services: dict[str, RunningService]
    loadgen: RunningService | None = None
    devices: int = 0
    server_processes: int = 1  # per turn path, behind its balancer
    extra: list[RunningService] = field(default_factory=list)  # canary replicas started later
    upstream: list[RunningService] = field(default_factory=list)  # the xiaozhi servers, balancers, LLM stand-in
    xiaozhi: dict[str, str] = field(default_factory=dict)  # the stable path's websocket_url, ota_url (balancer's)
    probes: list[RunningService] = field(default_factory=list)  # devices taking turns through each xiaozhi server
    server_dirs: list[str] = field(default_factory=list)  # each xiaozhi server's working directory
    images: dict[str, str] = field(default_factory=dict)  # service -> image of the stable turn path (served.py)
    # what a canary's turn path needs (xzctl.sandbox.turnpath); not recorded
    fleet: Fleet | None = None
    xiaozhi_source: str | Path | None = None
    log_dir: Path | None = None

    def scraped(self) -> list[RunningService]:
        return [*self.services.values(), *self.extra, *([self.loadgen] if self.loadgen else []), *self.probes]

    def all(self) -> list[RunningService]:
        return [*self.scraped(), *self.upstream]

    def scrape_targets(self) -> list[dict[str, Any]]:
        """Static configs for the edge job: one target per real service, labelled with the node (upstream's server
        and the LLM stand-in expose no metrics)."""
        return [scrape_target(self.node, self.region, s) for s in self.scraped()]

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "region": self.region,
            "devices": self.devices,
            "server_processes": self.server_processes,
            "services": {s.name + f"-{s.port}": service_record(s) for s in self.all()},
            "xiaozhi": self.xiaozhi or None,
            "server_dirs": self.server_dirs,
            "images": self.images,
            # what a rollout on this node needs to start a canary's turn path from another process
            "xiaozhi_source": str(self.xiaozhi_source) if self.xiaozhi_source is not None else None,
            "log_dir": str(self.log_dir) if self.log_dir is not None else None,
            "pids": [s.process.pid for s in self.all()],
            "containers": [s.container for s in self.all() if s.container],
        }


def scrape_target(node: str, region: str, s: RunningService) -> dict[str, Any]:
    """A real service's static target in the edge job: instance NODE/NAME-PORT, the node's region and node labels."""
    labels = {"instance": f"{node}/{s.name}-{s.port}", c.REGION: region, c.NODE: node}
    return {"targets": [f"127.0.0.1:{s.port}"], "labels": labels}


def service_record(s: RunningService) -> dict[str, Any]:
    """One running service as the sandbox state records it (`sandbox status`, stop and rollouts read it)."""
    return {"url": s.url, "source": s.source, "ports": s.ports, "pid": s.process.pid, "image": s.image}


def other_ports(name: str) -> dict[str, int]:
    """A free loopback port for each of the service's contract endpoints but the main one (ASR's WebSocket)."""
    return {e.name: free_port() for e in sc.SERVICES[name].endpoints[1:]}


def start_asr_replica(
    real: RealNode,
    *,
    state_dir: Path,
    log_dir: Path,
    track: str,
    version: str | None = None,
    env: dict[str, str] | None = None,
    catalog_dir: Path | None = None,
) -> RunningService:
    """One more ASR replica of the node (a canary), started and ready; the caller shifts traffic to it."""
    service = start_service(
        "asr",
        port=free_port(),
        state_dir=state_dir,
        log_dir=log_dir,
        version=version,
        env={sc.TRACK_ENV: track, **(env or {})},
        catalog_dir=catalog_dir,
        ports=other_ports("asr"),
    )
    real.extra.append(service)
    try:
        wait_ready(service, READY_TIMEOUT)
    except BaseException:
        stop_real_node(real)
        raise
    return service


def start_real_node(
    fleet: Fleet,
    node_id: str,
    *,
    state_dir: Path,
    log_dir: Path,
    devices: int | None = None,
    turn_interval: float = TURN_INTERVAL,
    duration_seconds: float = 7 * 86400.0,
    catalog_dir: Path | None = None,
    xiaozhi_source: str | Path | None = None,
    server_processes: int | None = None,
) -> RealNode:
    """Start the node's services, wait until each is ready (a real warm-up inference), then the load generator;
    with `xiaozhi_source`, the upstream xiaozhi server too: `server_processes` of them (default: the node's, scaled
    to this machine) behind a balancer."""
    node = next((n for n in fleet.edge_nodes() if n.id == node_id), None)
    if node is None:
        known = ", ".join(n.id for n in fleet.edge_nodes()[:5])
        raise BadInputError(f"--real-node {node_id!r} is not an edge node of the fleet", hint=f"e.g. {known}")
    if xiaozhi_source is not None and devices is None:
        # the node's devices talk through the xiaozhi server (the probe): the load generator keeps one device for
        # the service-level metrics, instead of a queue of synthetic requests that starves the real turns' ASR
        devices = 1
    processes = scaled_processes(node) if server_processes is None else server_processes
    if not 1 <= processes <= MAX_SERVER_PROCESSES:
        raise BadInputError(f"--server-processes {processes}: give 1 to {MAX_SERVER_PROCESSES} on this machine")
    real = RealNode(node.id, node.region, {}, devices=devices or scaled_devices(node), server_processes=processes)
    # region and node come from the scrape targets' labels, as in production
    labels = {sc.TRACK_ENV: "stable"}
    catalog = load_catalog(catalog_dir)
    try:
        for name in SERVICES:
            real.services[name] = start_service(
                name,
                port=free_port(),
                state_dir=state_dir,
                log_dir=log_dir,
                version=spec_version(catalog, name, node.services.inference()[name].image),
                env=labels,
                catalog_dir=catalog_dir,
                ports=other_ports(name),
            )
        for service in real.services.values():
            wait_ready(service, READY_TIMEOUT)
        asr = real.services["asr"]
        loadgen_port = free_port()
        config: dict[str, Any] = {
            "vad": real.services["vad"].url,
            "tts": real.services["tts"].url,
            "asr": [{"url": asr.url, "track": "stable", "image": asr.image, "weight": 1.0}],
            "devices": real.devices,
            "turn_interval_seconds": turn_interval,
            "duration_seconds": duration_seconds,
            "port": loadgen_port,
        }
        log_dir.mkdir(parents=True, exist_ok=True)
        config_file = log_dir / "loadgen.json"
        config_file.write_text(json.dumps(config), encoding="utf-8")
        real.loadgen = _start_loadgen(config_file, loadgen_port, labels, log_dir, catalog_dir)
        wait_ready(real.loadgen, LOADGEN_TIMEOUT)
        if xiaozhi_source is not None:
            from xzctl.sandbox.turnpath import start_turn_path

            real.fleet, real.xiaozhi_source, real.log_dir = fleet, xiaozhi_source, log_dir
            real.xiaozhi = start_turn_path(real, real.services["asr"], track="stable")
            from xzctl.sandbox.served import served_images

            asr, tts = real.services["asr"], real.services["tts"]
            real.images = served_images(asr, tts, xiaozhi_source, catalog)
    except BaseException:
        stop_real_node(real)
        raise
    return real


def spec_version(catalog: Catalog, name: str, ref: str) -> str | None:
    """The catalog version the spec pins for service `name` (what the node runs), None when the spec names no
    release of the catalog's image (the catalog's current version then runs)."""
    image = catalog.get(name)
    parsed = ImageRef.parse(ref)
    if parsed.repository != image.info.repository or parsed.tag is None or image.release(parsed.tag) is None:
        return None
    return parsed.tag


def _start_loadgen(
    config_file: Path, port: int, labels: dict[str, str], log_dir: Path, catalog_dir: Path | None
) -> RunningService:
    import subprocess

    lib = stage_package(log_dir / "loadgen-lib", load_catalog(catalog_dir).root)
    env = {**os.environ, **labels, "PYTHONPATH": str(lib), sc.IMAGE_ENV: "sandbox/loadgen"}
    log = log_dir / "loadgen.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "xz_inference.loadgen", str(config_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return RunningService("loadgen", port, "package", process, None, log, time.monotonic(), "sandbox/loadgen")


def set_asr_split(real: RealNode, targets: list[tuple[RunningService, str, float]]) -> None:
    """Send the devices' ASR traffic to these replicas: (replica, track, weight)."""
    if real.loadgen is None:
        raise ExternalToolError("the real node's load generator is not running")
    post_asr_split(real.loadgen.url, [(s.url, track, s.image, weight) for s, track, weight in targets])


def post_asr_split(loadgen_url: str, targets: list[tuple[str, str, str, float]]) -> None:
    """Tell the load generator at `loadgen_url` where the ASR traffic goes: (replica URL, track, image, weight)."""
    import urllib.request

    body = json.dumps([{"url": u, "track": t, "image": i, "weight": w} for u, t, i, w in targets]).encode()
    request = urllib.request.Request(
        f"{loadgen_url}/targets", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10.0) as response:
        response.read(4096)


def stop_real_node(real: RealNode) -> None:
    for service in real.all():
        stop_service(service)


def stop_recorded_real_node(record: dict[str, Any]) -> None:
    """Stop a real node recorded by `sandbox up` (from another process): its process groups, then its containers.

    A pid is only signalled while its command line is still one of ours, so a reused pid is left alone."""
    server_dirs = {*(record.get("server_dirs") or []), (record.get("xiaozhi") or {}).get("work_dir")} - {None}
    stop_recorded(list(record.get("pids", [])), {str(d) for d in server_dirs}, list(record.get("containers", [])))


def stop_recorded(pids: list[int], server_dirs: set[str], containers: list[str]) -> None:
    """Stop recorded processes of the real node (ours by command line, or a xiaozhi server by its working
    directory), wait until they are gone (bounded), then remove the containers."""
    import contextlib
    import signal

    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if any(mark in cmdline for mark in OURS) or cwd in server_dirs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.1)
    remove_containers(containers)
