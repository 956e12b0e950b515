"""A turn path of the sandbox's real node: one upstream xiaozhi server wired to one ASR replica (with the node's
TTS and the LLM stand-in), and a probe device taking turns through it that exports the TURN_* series with the
replica's track. The stable path starts with the node; a canary ASR replica gets a path of its own, so the
rollout analysis compares real turns of both tracks (checks turn_first_audio_p95_seconds, turn_failure_ratio)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from xzctl.errors import BadInputError
from xzctl.images.run import RunningService, wait_ready
from xzctl.sandbox import xiaozhi
from xzctl.sandbox.processes import free_port, spawn
from xzctl.sandbox.realnode import LOADGEN_TIMEOUT, RealNode
from xzctl.spec.models import Fleet

PROBE_INTERVAL = 15.0  # seconds between a probe's turns (one turn took 4-38 s on 2 loaded cores)
FIRST_TURN_TIMEOUT = 180.0  # the probe is ready after its first answered turn: a new server's first is the slowest


def start_turn_path(real: RealNode, asr: RunningService, *, track: str) -> dict[str, str]:
    """Start a xiaozhi server on `asr` and its probe (track `track`); the server's URLs. Started processes join
    the real node's, so stopping the node stops them."""
    if real.fleet is None or real.xiaozhi_source is None or real.log_dir is None:
        raise BadInputError("the real node runs no xiaozhi server", hint="start it with the upstream source")
    llm = next((s for s in real.upstream if s.name == "llm"), None)
    if llm is None:
        llm = xiaozhi.start_llm_standin(real.log_dir)
        real.upstream.append(llm)
        wait_ready(llm, LOADGEN_TIMEOUT)
    path = start_path(
        real.fleet,
        real.node,
        source=real.xiaozhi_source,
        log_dir=real.log_dir,
        asr=asr,
        tts_url=real.services["tts"].url,
        llm_url=llm.url,
        track=track,
        started=real.upstream,
        probes=real.probes,
    )
    real.server_dirs.append(path["work_dir"])
    return path


def server_dir(log_dir: Path, track: str, asr_port: int) -> Path:
    """The working directory of the server of a track's path (its copy of upstream; how a stop recognises it)."""
    return log_dir / f"xiaozhi-server-{track}-{asr_port}"


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
    started: list[RunningService],
    probes: list[RunningService],
) -> dict[str, str]:
    """The server on `asr` (FunASR WebSocket), the node's TTS and the LLM, then its probe; each process joins
    `started` (the server) or `probes` as soon as it runs, so a failure later still stops it."""
    if asr.ws_url is None:  # the server reaches ASR through its FunASR WebSocket (the rendered fun_server)
        raise BadInputError(f"{asr.name} on port {asr.port} serves no FunASR WebSocket")
    work_dir = server_dir(log_dir, track, asr.port)
    server, http_port = xiaozhi.start_server(
        fleet,
        fleet.node(node),
        source=source,
        work_dir=work_dir,
        log_dir=log_dir,
        asr_ws=asr.ws_url,
        tts=tts_url,
        llm=llm_url,
    )
    started.append(server)
    xiaozhi.wait_listening(server, http_port)
    urls = {
        "websocket_url": f"ws://127.0.0.1:{server.port}{xiaozhi.WS_PATH}",
        "ota_url": f"http://127.0.0.1:{http_port}{xiaozhi.OTA_PATH}",
        "work_dir": str(work_dir),
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
