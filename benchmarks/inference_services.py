"""Inference services from their built images: readiness time, real-time factor and p95 latency at an edge node's
load scaled to this machine, printed beside the seed's per-request targets.

    python benchmarks/inference_services.py [--state-dir .xzctl] [--node bj-edge-01] [--seconds 30] [--package]

Build the images first (`xzctl images build vad|asr|tts`); without a built image a service runs from the package
(say so with --package to do it on purpose). Load: the node's devices scaled to the local cores, one turn per
device every --turn-interval seconds; each turn is one request to each service (open loop, fixed arrival times).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from functools import partial
from pathlib import Path

import asr_corpus  # beside this script
import requests

from xzctl import service_contract as sc
from xzctl.images.run import start_service, stop_service, wait_ready
from xzctl.sandbox.realnode import TURN_INTERVAL, scaled_devices
from xzctl.spec import load_fleet

ROOT = Path(__file__).resolve().parents[1]

TARGETS_MS = {"vad": 50, "asr": 200, "tts": 150}  # the seed's per-request targets
TEXT = "turn on the light in the kitchen"
REPLY = "好的，已经为你打开厨房的灯"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as w:
        # espeak-ng streams its WAV with a placeholder frame count: count the bytes that are there
        frames = len(w.readframes(w.getnframes())) / (w.getsampwidth() * w.getnchannels())
        return frames / w.getframerate()


def _speech() -> tuple[bytes, bytes, float]:
    wav = subprocess.run(["espeak-ng", "--stdout", "-v", "en-us", "--", TEXT], capture_output=True, check=True).stdout
    sys.path.insert(0, str(ROOT / "inference_images"))
    from xz_inference.audio import read_wav

    pcm = read_wav(wav)
    pcm = pcm[: len(pcm) - len(pcm) % 512]
    return wav, pcm.tobytes(), len(pcm) / sc.PCM16_16K.sample_rate


def _request(name: str, url: str, wav: bytes, pcm: bytes, reply: str = REPLY) -> requests.Response:
    if name == "vad":
        return requests.post(
            f"{url}{sc.VAD.main.path}?session=b{threading.get_ident()}",
            data=pcm,
            headers={"Content-Type": "audio/l16"},
            timeout=60,
        )
    if name == "asr":
        return requests.post(f"{url}{sc.ASR.main.path}", data=wav, headers={"Content-Type": "audio/wav"}, timeout=60)
    return requests.post(f"{url}{sc.TTS.main.path}", json={sc.TTS_TEXT_KEY: reply, "voice": "cmn"}, timeout=60)


def _rtf(name: str, url: str, wav: bytes, pcm: bytes, spoken: float) -> float:
    """Median of three requests alone (no queue), over the seconds of audio in (VAD, ASR) or out (TTS, uncached)."""
    ratios = []
    for i in range(3):
        started = time.monotonic()
        response = _request(name, url, wav, pcm, reply=f"{REPLY}{'。' * (i + 1)}")
        took = time.monotonic() - started
        ratios.append(took / (_wav_seconds(response.content) if name == "tts" else spoken))
    return sorted(ratios)[1]


def _load(name: str, url: str, *, rate: float, seconds: float, wav: bytes, pcm: bytes) -> tuple[list[float], int]:
    """Open loop: request i leaves at i / rate whatever the previous ones did; latencies in seconds."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()

    def one() -> None:
        nonlocal errors
        started = time.monotonic()
        try:
            response = _request(name, url, wav, pcm)
            ok = response.status_code == 200
        except requests.RequestException:
            ok = False
        took = time.monotonic() - started
        with lock:
            if ok:
                latencies.append(took)
            else:
                errors += 1

    threads = []
    start = time.monotonic()
    for i in range(max(1, int(rate * seconds))):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        thread = threading.Thread(target=one, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout=120)
    return latencies, errors


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=os.environ.get("XZCTL_STATE_DIR", ".xzctl"))
    parser.add_argument("--node", default="bj-edge-01")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--turn-interval", type=float, default=TURN_INTERVAL)
    parser.add_argument("--package", action="store_true", help="run the package, not the built images")
    args = parser.parse_args()

    fleet = load_fleet(None).fleet
    node = next(n for n in fleet.edge_nodes() if n.id == args.node)
    cores = os.cpu_count() or 1
    devices = scaled_devices(node, cores)
    rate = devices / args.turn_interval
    wav, pcm, spoken = _speech()
    print(
        f"machine: {cores} cores; node {node.id}: {node.devices} devices on {node.capacity.cpu_cores} cores "
        f"-> {devices} devices here, one turn each every {args.turn_interval:g} s = {rate:.2f} requests/s per service"
    )
    print(
        f"{'service':8} {'source':8} {'ready s':>8} {'RTF':>7} {'p50 ms':>8} {'p95 ms':>8} {'target':>8} "
        f"{'reqs':>5} {'errors':>6}"
    )
    corpus_lines = ""
    with tempfile.TemporaryDirectory() as logs:
        for name in ("vad", "asr", "tts"):
            service = start_service(
                name,
                port=_free_port(),
                state_dir=Path(args.state_dir),
                log_dir=Path(logs),
                prefer_image=not args.package,
                ports={"ws": _free_port()} if name == "asr" else None,
            )
            try:
                ready = wait_ready(service, 300.0)
                rtf = _rtf(name, service.url, wav, pcm, spoken)
                latencies, errors = _load(name, service.url, rate=rate, seconds=args.seconds, wav=wav, pcm=pcm)
                if name == "asr":  # accuracy and latency on the corpus, printed after the table
                    corpus_lines = _captured(partial(asr_corpus.report, service, ["en"]))
            finally:
                stop_service(service)
            verdict = "ok" if _p95(latencies) * 1000 < TARGETS_MS[name] else "MISSED"
            print(
                f"{name:8} {service.source.split()[0]:8} {ready:8.2f} {rtf:7.3f} {_p50(latencies) * 1000:8.1f} "
                f"{_p95(latencies) * 1000:8.1f} {'<' + str(TARGETS_MS[name]):>8} {len(latencies):5d} {errors:6d}"
                f"  {verdict}"
            )
    if corpus_lines:
        print(f"\nasr on the corpus (benchmarks/asr_corpus.py; --model base for Chinese):\n{corpus_lines}")
    print("ready: start -> first /ready 200 (for an image: `buildah run` in a working container made beforehand).")
    print("RTF: a request alone / seconds of audio in (VAD, ASR) or out (TTS, not cached). p50/p95: open-loop load")
    print(
        "at the scaled node rate, queueing included; TTS answers one repeated reply, so mostly from its phrase cache."
    )


def _captured(report: Callable[[], object]) -> str:
    """What a report prints, kept to print after the services' table."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        report()
    return buffer.getvalue().rstrip()


def _p50(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("nan")


if __name__ == "__main__":
    main()
