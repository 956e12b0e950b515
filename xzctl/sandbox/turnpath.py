"""A turn path of the sandbox's real node: the node's upstream xiaozhi server processes (`RealNode.server_processes`,
sharing one auth key) behind its L4 balancer (xzctl.sandbox.balancer), wired to one ASR replica (with the node's
TTS and the LLM stand-in), and a probe device taking turns through the balancer that exports the TURN_* series
with the replica's track. The stable path starts with the node; a canary ASR replica gets a path of its own (as
many processes), so the rollout analysis compares real turns of both tracks (checks turn_first_audio_p95_seconds,
turn_failure_ratio)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from xzctl.errors import BadInputError
from xzctl.images.run import RunningService, wait_ready
from xzctl.sandbox import xiaozhi
from xzctl.sandbox.balancer import start_balancer
from xzctl.sandbox.processes import free_port, spawn
from xzctl.sandbox.realnode import LOADGEN_TIMEOUT, RealNode
from xzctl.spec.models import Fleet

PROBE_INTERVAL = 15.0  # seconds between a probe's turns (one turn took 4-38 s on 2 loaded cores)
FIRST_TURN_TIMEOUT = 180.0  # the probe is ready after its first answered turn: a new server's first is the slowest


def start_turn_path(real: RealNode, asr: RunningService, *, track: str) -> dict[str, str]:
    """Start the node's xiaozhi server processes on `asr`, their balancer and the probe (track `track`); the URLs
    devices use (the balancer's). Started processes join the real node's, so stopping the node stops them."""
    if real.fleet is None or real.xiaozhi_source is None or real.log_dir is None:
        raise BadInputError("the real node runs no xiaozhi server", hint="start it with the upstream source")
    llm = next((s for s in real.upstream if s.name == "llm"), None)
    if llm is None:
        llm = xiaozhi.start_llm_standin(real.log_dir)
        real.upstream.append(llm)
        wait_ready(llm, LOADGEN_TIMEOUT)
    real.server_dirs += server_dirs(real.log_dir, track, asr.port, real.server_processes)
    return start_path(
        real.fleet,
        real.node,
        source=real.xiaozhi_source,
        log_dir=real.log_dir,
        asr=asr,
        tts_url=real.services["tts"].url,
        llm_url=llm.url,
        track=track,
        processes=real.server_processes,
        started=real.upstream,
        probes=real.probes,
    )


def server_dirs(log_dir: Path, track: str, asr_port: int, processes: int) -> list[str]:
    """The working directories of the servers of a track's path (their copies of upstream; how a stop recognises
    them)."""
    return [str(log_dir / f"xiaozhi-server-{track}-{asr_port}-{index}") for index in range(processes)]


def start_path(
    fleet: Fleet,
    node: str,
    *,
    source: str | Path,
    log_dir: Path,
    asr: RunningService,
    tts_url: str,
    llm_url: str,
    track: str,
    processes: int,
    started: list[RunningService],
    probes: list[RunningService],
) -> dict[str, str]:
    """`processes` servers on `asr` (FunASR WebSocket), the node's TTS and the LLM, sharing one auth key behind
    their balancer, then the probe; each process joins `started` (servers, balancer) or `probes` as soon as it
    runs, so a failure later still stops it."""
    if asr.ws_url is None:  # the server reaches ASR through its FunASR WebSocket (the rendered fun_server)
        raise BadInputError(f"{asr.name} on port {asr.port} serves no FunASR WebSocket")
    front = {"ws": free_port(), "http": free_port()}  # the balancer's: what devices and the OTA answer name
    auth_key = xiaozhi.new_auth_key()
    servers: list[tuple[RunningService, int]] = []
    for work_dir in server_dirs(log_dir, track, asr.port, processes):
        server, http_port = xiaozhi.start_server(
            fleet,
            fleet.node(node),
            source=source,
            work_dir=Path(work_dir),
            log_dir=log_dir,
            asr_ws=asr.ws_url,
            tts=tts_url,
            llm=llm_url,
            auth_key=auth_key,
            front=(front["ws"], front["http"]),
        )
        started.append(server)
        servers.append((server, http_port))
    for server, http_port in servers:  # started together: their start-ups overlap
        xiaozhi.wait_listening(server, http_port)
    ports = {"ws": [s.port for s, _ in servers], "http": [h for _, h in servers]}
    started.append(start_balancer(front, ports, log_dir))
    urls = {
        "websocket_url": f"ws://127.0.0.1:{front['ws']}{xiaozhi.WS_PATH}",
        "ota_url": f"http://127.0.0.1:{front['http']}{xiaozhi.OTA_PATH}",
    }
    port = free_port()
    config = {
        "ws_url": urls["websocket_url"],
        "ota_url": urls["ota_url"],
        "port": port,
        "track": track,
        "device_id": f"{node}-probe-{track}",
        "interval_seconds": PROBE_INTERVAL,
    }
    config_file = log_dir / f"probe-{track}-{port}.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    log = log_dir / f"probe-{port}.log"
    process = spawn([sys.executable, "-m", "xzctl.loadtest.probe", str(config_file)], log)
    probe = RunningService("probe", port, "package", process, None, log, time.monotonic(), f"sandbox/probe-{track}")
    probes.append(probe)
    wait_ready(probe, FIRST_TURN_TIMEOUT)
    return urls
