"""A real node in the sandbox: one edge node's VAD, ASR and TTS run for real (from the built images, else from the
same package with this Python), fed by a load generator whose simulated devices speak known text, scored by word
error rate. Prometheus scrapes the services and the generator next to the simulated nodes, in the edge job with the
node's region and node labels, so alerts, capacity and the canary analysis read real inference for that node.

The devices are the node's own count scaled to this machine: devices x local cores / the node's cores.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xzctl.errors import BadInputError, ExternalToolError
from xzctl.images.build import stage_package
from xzctl.images.catalog import load_catalog
from xzctl.images.run import RunningService, remove_containers, start_service, stop_service, wait_ready
from xzctl.metrics import contract as c
from xzctl.sandbox.processes import free_port
from xzctl.spec.models import EdgeNode, Fleet

SERVICES = ("vad", "asr", "tts")
READY_TIMEOUT = 180.0
LOADGEN_TIMEOUT = 60.0
TURN_INTERVAL = 20.0  # seconds between a device's turns: a conversation turn, not a stream of requests


def scaled_devices(node: EdgeNode, cores: int | None = None) -> int:
    """The node's devices scaled to what this machine's cores carry (at least one device)."""
    local = cores or os.cpu_count() or 1
    return max(1, round(node.devices * min(local, node.capacity.cpu_cores) / node.capacity.cpu_cores))


@dataclass
class RealNode:
    node: str
    region: str
    services: dict[str, RunningService]
    loadgen: RunningService | None = None
    devices: int = 0
    extra: list[RunningService] = field(default_factory=list)  # canary replicas started later

    def all(self) -> list[RunningService]:
        return [*self.services.values(), *self.extra, *([self.loadgen] if self.loadgen else [])]

    def scrape_targets(self) -> list[dict[str, Any]]:
        """Static configs for the edge job: one target per real service, labelled with the node."""
        return [
            {
                "targets": [f"127.0.0.1:{s.port}"],
                "labels": {"instance": f"{self.node}/{s.name}-{s.port}", c.REGION: self.region, c.NODE: self.node},
            }
            for s in self.all()
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "devices": self.devices,
            "services": {s.name + f"-{s.port}": {"url": s.url, "source": s.source} for s in self.all()},
            "pids": [s.process.pid for s in self.all()],
            "containers": [s.container for s in self.all() if s.container],
        }


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
        env={"XZ_TRACK": track, "XZ_ASR_WS_PORT": str(free_port()), **(env or {})},
        catalog_dir=catalog_dir,
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
) -> RealNode:
    """Start the node's services, wait until each is ready (a real warm-up inference), then the load generator."""
    node = next((n for n in fleet.edge_nodes() if n.id == node_id), None)
    if node is None:
        known = ", ".join(n.id for n in fleet.edge_nodes()[:5])
        raise BadInputError(f"--real-node {node_id!r} is not an edge node of the fleet", hint=f"e.g. {known}")
    real = RealNode(node.id, node.region, {}, devices=devices or scaled_devices(node))
    # region and node come from the scrape targets' labels, as in production
    labels = {"XZ_TRACK": "stable"}
    try:
        for name in SERVICES:
            # the ASR's FunASR WebSocket on a port of its own: replicas of one machine must not share 10095
            env = {**labels, "XZ_ASR_WS_PORT": str(free_port())} if name == "asr" else labels
            real.services[name] = start_service(
                name, port=free_port(), state_dir=state_dir, log_dir=log_dir, env=env, catalog_dir=catalog_dir
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
    except BaseException:
        stop_real_node(real)
        raise
    return real


def _start_loadgen(
    config_file: Path, port: int, labels: dict[str, str], log_dir: Path, catalog_dir: Path | None
) -> RunningService:
    import subprocess

    lib = stage_package(log_dir / "loadgen-lib", load_catalog(catalog_dir).root)
    env = {**os.environ, **labels, "PYTHONPATH": str(lib), "XZ_IMAGE": "sandbox/loadgen"}
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
    import urllib.request

    if real.loadgen is None:
        raise ExternalToolError("the real node's load generator is not running")
    body = json.dumps(
        [{"url": s.url, "track": track, "image": s.image, "weight": weight} for s, track, weight in targets]
    ).encode()
    request = urllib.request.Request(
        f"{real.loadgen.url}/targets", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10.0) as response:
        response.read(4096)


def stop_real_node(real: RealNode) -> None:
    for service in real.all():
        stop_service(service)


def stop_recorded_real_node(record: dict[str, Any]) -> None:
    """Stop a real node recorded by `sandbox up` (from another process): its process groups, then its containers.

    A pid is only signalled while its command line is still one of ours, so a reused pid is left alone."""
    import contextlib
    import signal

    for pid in record.get("pids", []):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"xz_inference" in cmdline or b"buildah" in cmdline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in record.get("pids", [])):
        time.sleep(0.1)
    remove_containers(list(record.get("containers", [])))
