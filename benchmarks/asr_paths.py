"""Both ASR paths of the upstream xiaozhi server, with 4 devices talking at once: which one stalls the server?

Goal (issue 22): render the ASR path that does not stall the server. For each of the contract's ASR providers
(`fun_server` on our ASR's FunASR WebSocket, `openai` on its HTTP form) this starts one ASR replica (the package,
Whisper), and an upstream server whose override points its ASR at that path (TTS and the LLM stand-in are shared),
then measures (a) one device alone, a few turns: transcript (stt) and first-audio latency p50/p95; (b) 4 devices
talking at once (a few turns each, the same utterances) while a probe GETs the server's WebSocket port (`/`,
"Server is running") every 0.2 s: the stall is the max and p95 of those GETs. Verdict: the path with the lower GET
p95 (then max) stalls less; it should be the one the override renders. Loopback only; everything started is
stopped. Needs the upstream source ($XZCTL_XIAOZHI_SOURCE), espeak-ng and ffmpeg.

    python benchmarks/asr_paths.py [--state-dir .xzctl] [--devices 4] [--turns 3] [--solo-turns 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xzctl import service_contract as sc
from xzctl.images.run import RunningService, start_service, stop_service, wait_ready
from xzctl.loadtest.device import DeviceClient, DeviceError, TurnResult, failed
from xzctl.loadtest.speech import speak
from xzctl.sandbox import xiaozhi
from xzctl.sandbox.processes import free_port
from xzctl.sandbox.realnode import READY_TIMEOUT, other_ports
from xzctl.spec import bundled_example_path, load_fleet

NODE = "bj-edge-01"
UTTERANCES = ("turn on the light in the kitchen", "what is the weather tomorrow", "play some music please")
DEVICE_TIMEOUT = 90.0  # a reply took 4-38 s on 2 loaded cores
PROBE_INTERVAL = 0.2
PROBE_TIMEOUT = 60.0  # a GET that waits this long is recorded at this long


@dataclass
class Figures:
    turns: list[TurnResult] = field(default_factory=list)  # appended from the device threads (atomic)
    probes: list[float] = field(default_factory=list)


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def talk(ws_url: str, ota_url: str, device_id: str, *, turns: int, speech: list[bytes], figures: Figures) -> None:
    """One device: connect, take `turns` turns (the utterances in turn), close; results into `figures`."""
    client = DeviceClient(ws_url, ota_url, device_id, timeout=DEVICE_TIMEOUT)
    try:
        client.connect()
    except DeviceError as exc:
        figures.turns.extend(failed(exc.failure) for _ in range(turns))
        return
    try:
        for i in range(turns):
            figures.turns.append(client.turn(speech[i % len(speech)]))
    finally:
        client.close()


def probe(url: str, stop: threading.Event, figures: Figures) -> None:
    """GET `url` every PROBE_INTERVAL until `stop`; each GET's duration into `figures.probes`."""
    while not stop.is_set():
        started = time.monotonic()
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as r,
        ):
            r.read(4096)
        figures.probes.append(time.monotonic() - started)
        stop.wait(PROBE_INTERVAL)


def concurrent(ws_url: str, ota_url: str, probe_url: str, *, devices: int, turns: int, speech: list[bytes]) -> Figures:
    figures = Figures()
    stop = threading.Event()
    prober = threading.Thread(target=probe, args=(probe_url, stop, figures), daemon=True)
    talkers = [
        threading.Thread(
            target=talk,
            args=(ws_url, ota_url, f"aa:bb:cc:dd:01:{i:02x}"),
            kwargs={"turns": turns, "speech": speech, "figures": figures},
        )
        for i in range(devices)
    ]
    prober.start()
    for t in talkers:
        t.start()
    bound = turns * (DEVICE_TIMEOUT + 30.0) + 60.0  # each turn ends within the device timeout
    deadline = time.monotonic() + bound
    for t in talkers:
        t.join(max(0.0, deadline - time.monotonic()))
    stop.set()
    prober.join(PROBE_TIMEOUT + 5.0)
    return figures


def latencies(figures: Figures, pick: Callable[[TurnResult], float | None]) -> list[float]:
    return [v for r in figures.turns if r.ok and (v := pick(r)) is not None]


def row(label: str, figures: Figures) -> str:
    stt = latencies(figures, lambda r: r.stt_seconds)
    audio = latencies(figures, lambda r: r.first_audio_seconds)
    cells = [quantile(stt, 0.5), quantile(stt, 0.95), quantile(audio, 0.5), quantile(audio, 0.95)]
    stall = [max(figures.probes) if figures.probes else None, quantile(figures.probes, 0.95)]
    return (
        f"  {label:14} {len(figures.turns):5d} {sum(not r.ok for r in figures.turns):5d} "
        + " ".join(f"{seconds(v):>7}" for v in cells)
        + " "
        + " ".join(f"{seconds(v):>8}" for v in stall)
        + f" {len(figures.probes):6d}"
    )


def start_package(name: str, args: argparse.Namespace, logs: Path) -> RunningService:
    """Service `name` from the package (Whisper for ASR), every contract endpoint on a free loopback port."""
    return start_service(
        name,
        port=free_port(),
        state_dir=Path(args.state_dir),
        log_dir=logs,
        prefer_image=False,
        ports=other_ports(name),
    )


def measure_path(
    provider: str, args: argparse.Namespace, *, logs: Path, shared: dict[str, str], speech: list[bytes]
) -> Figures:
    """Start an ASR replica and a server on `provider`'s path, measure one device then the crowd, print the rows."""
    fleet = load_fleet(bundled_example_path()).fleet
    started: list[RunningService] = []
    try:
        asr = start_package("asr", args, logs)
        started.append(asr)
        wait_ready(asr, READY_TIMEOUT)
        server, http_port = xiaozhi.start_server(
            fleet,
            fleet.node(NODE),
            source=None,
            work_dir=logs / f"xiaozhi-server-{provider}",
            log_dir=logs,
            asr_ws=asr.ws_url or "",  # other_ports gave the replica its FunASR WebSocket
            tts=shared["tts"],
            llm=shared["llm"],
            auth_key=xiaozhi.new_auth_key(),
            asr_provider=provider,
            asr_http=asr.url,
        )
        started.append(server)
        xiaozhi.wait_listening(server, http_port)
        ws_url = f"ws://127.0.0.1:{server.port}{xiaozhi.WS_PATH}"
        ota_url = f"http://127.0.0.1:{http_port}{xiaozhi.OTA_PATH}"
        solo = Figures()
        talk(ws_url, ota_url, "aa:bb:cc:dd:00:01", turns=args.solo_turns, speech=speech, figures=solo)
        crowd = concurrent(ws_url, ota_url, server.url + "/", devices=args.devices, turns=args.turns, speech=speech)
    finally:
        for service in reversed(started):
            stop_service(service)
    endpoint = next(p.endpoint for p in sc.ASR.providers if p.type == provider)
    print(f"{provider} (the ASR's {sc.ASR.endpoint(endpoint).protocol} endpoint)")
    print(
        f"  {'':14} {'turns':>5} {'fail':>5} {'stt p50':>7} {'stt p95':>7} {'aud p50':>7} {'aud p95':>7} "
        f"{'GET max':>8} {'GET p95':>8} {'GETs':>6}"
    )
    print(row("1 device", solo))
    print(row(f"{args.devices} devices", crowd))
    heard = sorted({r.transcript for r in solo.turns + crowd.turns if r.transcript})
    print(f"  heard: {' | '.join(heard)}")  # the ASR really transcribed (said: UTTERANCES)
    return crowd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=os.environ.get("XZCTL_STATE_DIR", ".xzctl"))
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--turns", type=int, default=3, help="turns per device while all talk at once")
    parser.add_argument("--solo-turns", type=int, default=5)
    args = parser.parse_args()

    xiaozhi.find_source(None)  # bad input before anything starts
    speech = [speak(text) for text in UTTERANCES]
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("latencies in seconds from the end of the device's speech; GET: the probe's plain GET on the server")
    stalls: dict[str, tuple[float, float]] = {}  # provider -> (GET p95, GET max)
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        shared: list[RunningService] = []
        try:
            tts = start_package("tts", args, logs)
            shared.append(tts)
            llm = xiaozhi.start_llm_standin(logs)
            shared.append(llm)
            for service in shared:
                wait_ready(service, READY_TIMEOUT)
            urls = {"tts": tts.url, "llm": llm.url}
            for provider in (p.type for p in sc.ASR.providers):
                crowd = measure_path(provider, args, logs=logs, shared=urls, speech=speech)
                # judged on the p95 first: on 2 loaded cores a lone descheduled GET can reach 1 s on either path
                p95 = quantile(crowd.probes, 0.95)
                stalls[provider] = (float("inf") if p95 is None else p95, max(crowd.probes, default=float("inf")))
        finally:
            for service in shared:
                stop_service(service)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    best = min(stalls, key=lambda p: stalls[p])
    rendered = xiaozhi.RENDERED_ASR
    print(
        "verdict: "
        + ", ".join(f"{p} GET p95 {p95:.2f} s, max {top:.2f} s" for p, (p95, top) in stalls.items())
        + f"; {best} stalls less; the override renders {rendered}: {'right' if best == rendered else 'WRONG'}"
    )
    return 0 if best == rendered else 1


if __name__ == "__main__":
    raise SystemExit(main())
