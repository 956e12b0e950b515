"""Load generator of the sandbox's real node: simulated devices speak known text (made by espeak-ng) through
VAD, ASR and TTS, and the transcripts are scored against that text (the corpus of corpus.py, English unless the
config names another `language`).

It serves /metrics like a service: the end-to-end latency of a turn (service `end_to_end`) and the word error
counters per ASR track and image, so Prometheus judges accuracy beside latency. Configuration is one JSON file
(`python -m xz_inference.loadgen CONFIG`): endpoints, devices, turn interval, run time.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from xz_inference import corpus
from xz_inference.audio import read_wav
from xz_inference.server import Handler, Request, RequestError, Response, Service, serve
from xzctl import service_contract as sc
from xzctl.metrics import contract as c

# What devices say comes from the corpus (corpus.py: several voices and speeds); what the node says back:
REPLIES = ("好的", "今天天气晴朗", "闹钟已设置", "正在为你播放音乐", "好的，已经关掉了")
HTTP_TIMEOUT = 30.0
MAX_RESPONSE = 16 * 1024 * 1024


def post(url: str, body: bytes, content_type: str) -> bytes:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        return bytes(response.read(MAX_RESPONSE))


@dataclass(frozen=True)
class AsrTarget:
    url: str
    track: str
    image: str
    weight: float


class LoadGenerator(Service):
    name = "end_to_end"

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.vad_url = str(config["vad"])
        self.tts_url = str(config["tts"])
        self.asr = [AsrTarget(**t) for t in config["asr"]]
        self.devices = int(config.get("devices", 4))
        self.interval = float(config.get("turn_interval_seconds", 10.0))
        self.deadline = time.monotonic() + float(config.get("duration_seconds", 3600.0))
        # the language the transcripts are scored in (errors per word, or per character for Chinese)
        self.utterances = corpus.utterances(str(config.get("language", "en")))
        self.speech: dict[corpus.Utterance, bytes] = {}

    def load(self) -> None:
        self.speech = {u: corpus.audio(u) for u in self.utterances}

    def warm_up(self) -> None:
        for i in range(self.devices):
            threading.Thread(target=self._device, args=(i,), name=f"device-{i}", daemon=True).start()

    def plan(self, rng: random.Random) -> list[tuple[corpus.Utterance, AsrTarget]]:
        """A device's next turns. Targets of equal weight (the tracks of a canary step) get the same utterance, one
        turn each in a random order: a paired comparison, so neither track's latency or word error rate rests on
        drawing the longer or harder utterances (two replicas of one release drew apart to a 2.4x p95 and WER 0.28
        against 0.06 on a few minutes of independent draws). Otherwise one target, drawn by weight."""
        utterance = rng.choice(self.utterances)
        targets = list(self.asr)
        if len(targets) > 1 and len({t.weight for t in targets}) == 1:
            rng.shuffle(targets)
            return [(utterance, t) for t in targets]
        return [(utterance, rng.choices(targets, weights=[t.weight for t in targets])[0])]

    def _turn(self, rng: random.Random, session: str, utterance: corpus.Utterance, target: AsrTarget) -> None:
        audio = self.speech[utterance]
        labels = {c.TRACK: target.track, c.IMAGE: target.image}
        started = time.monotonic()
        try:
            samples = read_wav(audio)
            usable = len(samples) - len(samples) % 512
            post(f"{self.vad_url}{sc.VAD.main.path}?session={session}", samples[:usable].tobytes(), "audio/l16")
            asr_path = sc.ASR.endpoint("http").path
            transcript = json.loads(post(f"{target.url}{asr_path}", audio, "audio/wav"))["text"]
            post(
                f"{self.tts_url}{sc.TTS.main.path}",
                json.dumps({sc.TTS_TEXT_KEY: rng.choice(REPLIES)}).encode(),
                "application/json",
            )
        except Exception:  # a failed turn is an end-to-end error, and the generator keeps going
            self.registry.inc(c.REQUESTS, result="error", **labels)
            return
        self.registry.observe(c.REQUEST_DURATION, time.monotonic() - started, **labels)
        self.registry.inc(c.REQUESTS, result="ok", **labels)
        errors, reference = corpus.score(utterance.text, transcript, utterance.language)
        self.registry.inc(c.ASR_REFERENCE_WORDS, reference, **labels)
        self.registry.inc(c.ASR_WORD_ERRORS, errors, **labels)

    def _device(self, index: int) -> None:
        rng = random.Random(index)
        session = f"device-{index}-{uuid.uuid4().hex[:8]}"
        time.sleep(rng.uniform(0, self.interval))  # devices do not all speak at once
        pending: list[tuple[corpus.Utterance, AsrTarget]] = []
        while time.monotonic() < self.deadline:
            started = time.monotonic()
            pending = [(u, t) for u, t in pending if t in self.asr]  # a target the split dropped gets no more
            if not pending:
                pending = self.plan(rng)
            utterance, target = pending.pop(0)
            self._turn(rng, session, utterance, target)
            time.sleep(max(0.0, self.interval * rng.uniform(0.5, 1.5) - (time.monotonic() - started)))

    def routes(self) -> dict[str, Handler]:
        return {"/targets": self._targets}

    def _targets(self, request: Request) -> Response:
        """Re-split the devices' ASR traffic (a canary step): a JSON list of {url, track, image, weight}."""
        try:
            self.asr = [AsrTarget(**t) for t in json.loads(request.body)]
        except (ValueError, TypeError) as exc:
            raise RequestError(f"targets: {exc}") from None
        return Response.json({"targets": len(self.asr)})


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    generator = LoadGenerator(config)
    httpd = serve(generator, "127.0.0.1", int(config.get("port", 0)))
    ready_file = config.get("port_file")
    if ready_file:
        with open(ready_file, "w", encoding="utf-8") as f:
            f.write(str(httpd.server_address[1]))
    httpd.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
