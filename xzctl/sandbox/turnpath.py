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

from xzctl.errors import BadInputError
from xzctl.images.run import RunningService, wait_ready
from xzctl.sandbox import xiaozhi
from xzctl.sandbox.balancer import start_balancer
from xzctl.sandbox.processes import free_port, spawn
from xzctl.sandbox.realnode import LOADGEN_TIMEOUT, RealNode

PROBE_INTERVAL = 15.0  # seconds between a probe's turns (one turn took 4-38 s on 2 loaded cores)


def start_turn_path(real: RealNode, asr: RunningService, *, track: str) -> dict[str, str]:
    """Start the node's xiaozhi server processes on `asr`, their balancer and the probe (track `track`); the URLs
    devices use (the balancer's). Started processes join the real node's, so stopping the node stops them."""
    if real.fleet is None or real.xiaozhi_source is None or real.log_dir is None:
        raise BadInputError("the real node runs no xiaozhi server", hint="start it with the upstream source")
    log_dir = real.log_dir
    llm = next((s for s in real.upstream if s.name == "llm"), None)
    if llm is None:
        llm = xiaozhi.start_llm_standin(log_dir)
        real.upstream.append(llm)
        wait_ready(llm, LOADGEN_TIMEOUT)
    if asr.ws_url is None:  # the server reaches ASR through its FunASR WebSocket (the rendered fun_server)
        raise BadInputError(f"{asr.name} on port {asr.port} serves no FunASR WebSocket")
    node = real.fleet.node(real.node)
    front = {"ws": free_port(), "http": free_port()}  # the balancer's: what devices and the OTA answer name
    auth_key = xiaozhi.new_auth_key()
    servers: list[tuple[RunningService, int]] = []
    for index in range(real.server_processes):
        work_dir = log_dir / f"xiaozhi-server-{track}-{asr.port}-{index}"
        real.server_dirs.append(str(work_dir))
        server, http_port = xiaozhi.start_server(
            real.fleet,
            node,
            source=real.xiaozhi_source,
            work_dir=work_dir,
            log_dir=log_dir,
            asr_ws=asr.ws_url,
            tts=real.services["tts"].url,
            llm=llm.url,
            auth_key=auth_key,
            front=(front["ws"], front["http"]),
        )
        real.upstream.append(server)
        servers.append((server, http_port))
    for server, http_port in servers:  # started together: their start-ups overlap
        xiaozhi.wait_listening(server, http_port)
    ports = {"ws": [s.port for s, _ in servers], "http": [h for _, h in servers]}
    real.upstream.append(start_balancer(front, ports, log_dir))
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
        "device_id": f"{real.node}-probe-{track}",
        "interval_seconds": PROBE_INTERVAL,
    }
    config_file = log_dir / f"probe-{track}-{port}.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    log = log_dir / f"probe-{port}.log"
    process = spawn([sys.executable, "-m", "xzctl.loadtest.probe", str(config_file)], log)
    probe = RunningService("probe", port, "package", process, None, log, time.monotonic(), f"sandbox/probe-{track}")
    real.probes.append(probe)
    wait_ready(probe, LOADGEN_TIMEOUT)
    return urls
