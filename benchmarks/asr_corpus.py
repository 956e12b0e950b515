"""ASR on the corpus (English and Chinese, several espeak-ng voices and speeds): word/character error rate per
language, latency one request at a time and with 4 at once, over HTTP and the FunASR WebSocket, and the replica's
RSS, printed beside the goals of issue 27 (p95 <= 500 ms alone with WER <= 0.25; p95 <= 1 s with 4 at once).

    python benchmarks/asr_corpus.py [--state-dir .xzctl] [--package] [--model tiny.en|base] [--language en|zh|auto]
    python benchmarks/asr_corpus.py --version 1.4.0-cuda --device cuda   # a site with a GPU (images build asr --gpu)
    python benchmarks/asr_corpus.py --nice -20       # as root on cores shared with other work

Every utterance is sent once per pass, so the service never decodes the same audio twice in a pass. Latency is
the client's wall time per request (HTTP: the upload and the answer; WebSocket: end of speech -> final result).
Also called by benchmarks/inference_services.py for the asr service.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from xzctl import service_contract as sc
from xzctl.images.run import RunningService, start_service, stop_service, wait_ready
from xzctl.sandbox.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "inference_images"))

from xz_inference import corpus  # noqa: E402  (the service package is beside xzctl, not installed)
from xz_inference.asr_ws import funasr_client  # noqa: E402
from xz_inference.audio import read_wav  # noqa: E402

GOAL_P95_ALONE_MS = 500.0
GOAL_P95_FOUR_MS = 1000.0
GOAL_WER = 0.25


@dataclass
class Pass:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)

    def add(self, utterance: corpus.Utterance, transcript: str, seconds: float) -> None:
        wrong, total = corpus.score(utterance.text, transcript, utterance.language)
        self.latencies.append(seconds)
        self.errors[utterance.language] = self.errors.get(utterance.language, 0) + wrong
        self.units[utterance.language] = self.units.get(utterance.language, 0) + total

    def rate(self, language: str) -> float:
        return self.errors.get(language, 0) / max(1, self.units.get(language, 0))

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def _http(url: str, wav: bytes) -> str:
    response = requests.post(f"{url}/v1/audio/transcriptions", files={"file": ("u.wav", wav, "audio/wav")}, timeout=60)
    response.raise_for_status()
    return str(response.json()["text"])


def _websocket(ws_url: str, wav: bytes) -> tuple[str, float]:
    """Offline mode as upstream's provider sends it; the time from end of speech to the final result."""
    pcm = read_wav(wav).tobytes()
    started = time.monotonic()
    replies = funasr_client(ws_url, pcm, mode="offline")
    return str(replies[-1]["text"]), time.monotonic() - started


def run_pass(service: RunningService, items: list[tuple[corpus.Utterance, bytes]], *, workers: int, ws: bool) -> Pass:
    result = Pass()

    def one(item: tuple[corpus.Utterance, bytes]) -> tuple[corpus.Utterance, str, float]:
        utterance, wav = item
        if ws and service.ws_url is not None:
            text, took = _websocket(service.ws_url, wav)
            return utterance, text, took
        started = time.monotonic()
        text = _http(service.url, wav)
        return utterance, text, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for utterance, text, took in pool.map(one, items):
            result.add(utterance, text, took)
    return result


def _group_stat(service: RunningService) -> list[list[str]]:
    """/proc stat fields (after the command name) of every process of the replica's process group (buildah's
    included for an image)."""
    rows = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if len(fields) > 21 and int(fields[2]) == service.process.pid:  # the process group id
            rows.append(fields)
    return rows


def rss_mib(service: RunningService) -> float:
    return sum(int(f[21]) for f in _group_stat(service)) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds(service: RunningService) -> float:
    """CPU time the replica has used (user + system): per request, the cost a loaded machine does not blur."""
    return sum(int(f[11]) + int(f[12]) for f in _group_stat(service)) / os.sysconf("SC_CLK_TCK")


def report(service: RunningService, languages: list[str]) -> bool:
    """Print the corpus figures of a running ASR replica; True when the goals are met."""
    items = [(u, corpus.audio(u)) for u in corpus.utterances() if u.language in languages]
    seconds = sum(len(read_wav(w)) for _, w in items) / 16000
    print(
        f"corpus: {len(items)} utterances ({', '.join(languages)}), {seconds:.0f} s of speech, each sent once per pass"
    )
    rate_names = " ".join(f"{'WER' if lang == 'en' else 'CER'}-{lang}" for lang in languages)
    print(f"{'pass':26} {'p50 ms':>7} {'p95 ms':>7} {'goal':>7} {'CPU ms':>7} {rate_names}")
    met = True
    for label, workers, ws, goal in (
        ("HTTP, one at a time", 1, False, GOAL_P95_ALONE_MS),
        ("WebSocket, one at a time", 1, True, GOAL_P95_ALONE_MS),
        ("HTTP, 4 at once", 4, False, GOAL_P95_FOUR_MS),
        ("WebSocket, 4 at once", 4, True, GOAL_P95_FOUR_MS),
    ):
        cpu = cpu_seconds(service)
        figures = run_pass(service, items, workers=workers, ws=ws)
        cpu_ms = (cpu_seconds(service) - cpu) / len(items) * 1000
        ok = figures.p(0.95) <= goal and ("en" not in languages or figures.rate("en") <= GOAL_WER)
        met = met and ok
        rates = " ".join(f"{figures.rate(lang):6.3f}" for lang in languages)
        verdict = "ok" if ok else "MISSED"
        print(
            f"{label:26} {figures.p(0.5):7.0f} {figures.p(0.95):7.0f} {'<=' + str(int(goal)):>7} {cpu_ms:7.0f} {rates}  {verdict}"
        )
    print(f"RSS of the replica: {rss_mib(service):.0f} MiB; WER goal: English <= {GOAL_WER}")
    print(
        f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall figures include the wait for CPU)"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", default=os.environ.get("XZCTL_STATE_DIR", ".xzctl"))
    parser.add_argument("--package", action="store_true", help="run the package, not the built image")
    parser.add_argument("--model", default="tiny.en", choices=["tiny.en", "base"])
    parser.add_argument("--language", default=None, choices=["en", "zh", "auto"], help="base only; default auto")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--version", default=None, help="image version (default: the catalog's)")
    parser.add_argument(
        "--nice",
        type=int,
        default=None,
        help="run the replica and this client at this niceness (e.g. -20 as root): on cores shared with other work, "
        "closer to the cores being the replica's own",
    )
    args = parser.parse_args()
    env = {sc.WHISPER_MODEL_ENV: args.model, sc.WHISPER_DEVICE_ENV: args.device}
    if args.language:
        env[sc.ASR_LANGUAGE_ENV] = args.language
    languages = ["en"] if args.model.endswith(".en") or args.language == "en" else ["en", "zh"]
    if args.nice is not None:  # inherited by the replica and every thread it starts
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    with tempfile.TemporaryDirectory() as logs:
        service = start_service(
            "asr",
            port=free_port(),
            state_dir=Path(args.state_dir),
            log_dir=Path(logs),
            version=args.version,
            env=env,
            prefer_image=not args.package,
            ports={"ws": free_port()},
        )
        try:
            ready = wait_ready(service, 300.0)
            print(
                f"asr {args.model} on {args.device} from {service.source}: ready in {ready:.1f} s; {os.cpu_count()} cores"
            )
            met = report(service, languages)
        finally:
            stop_service(service)
    print("goals met" if met else "goals MISSED")


if __name__ == "__main__":
    main()
