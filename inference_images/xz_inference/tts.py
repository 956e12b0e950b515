"""TTS service: espeak-ng on the node (Mandarin `cmn` and English offline) behind the seed's phrase cache; edge-tts
is an optional online backend (`XZ_TTS_BACKEND=edge`, only when the image carries the edge-tts wheel) for MP3.

POST /v1/audio/speech with JSON {"input": text, "voice"?: name, "response_format"?: wav|mp3} (what xiaozhi-server's
`custom` TTS provider sends; upstream decodes the answer by the format its config names, so the service answers
exactly the format asked): WAV from espeak-ng (the default and what the override asks), MP3 from edge-tts only.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections import OrderedDict

from xz_inference.server import Handler, Request, RequestError, Response, Service, main
from xzctl import service_contract as sc
from xzctl.metrics import contract as c

MAX_TEXT = 1000
SYNTH_TIMEOUT = 10.0
EDGE_TIMEOUT = 2.0  # past this the request fails: a device must not wait on the internet
CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


class PhraseCache:
    """LRU of synthesised phrases bounded in bytes: greetings and fixed answers repeat across devices."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[tuple[str, ...], tuple[bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> tuple[bytes, str] | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple[str, ...], audio: bytes, content_type: str) -> None:
        if len(audio) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.size -= len(old[0])
            self._items[key] = (audio, content_type)
            self.size += len(audio)
            while self.size > self.max_bytes:
                _, (dropped, _) = self._items.popitem(last=False)
                self.size -= len(dropped)


def espeak(text: str, voice: str) -> bytes:
    result = subprocess.run(
        ["espeak-ng", "--stdout", "-v", voice, "--", text],
        capture_output=True,
        timeout=SYNTH_TIMEOUT,
        check=False,
    )
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(f"espeak-ng failed: {result.stderr.decode(errors='replace').strip()[:200]}")
    return result.stdout


def edge_tts_audio(text: str, voice: str) -> bytes:
    import edge_tts

    async def fetch() -> bytes:
        chunks = []
        async for item in edge_tts.Communicate(text, voice).stream():
            if item.get("type") == "audio":
                chunks.append(item["data"])
        return b"".join(chunks)

    return asyncio.run(asyncio.wait_for(fetch(), EDGE_TIMEOUT))


class TtsService(Service):
    name = "tts"

    def __init__(self) -> None:
        super().__init__()
        self.voice = os.environ.get(sc.TTS_VOICE_ENV, "cmn")
        self.backend = os.environ.get(sc.TTS_BACKEND_ENV, "local")
        self.edge_voice = os.environ.get(sc.TTS_EDGE_VOICE_ENV, "zh-CN-XiaoxiaoNeural")
        self.cache = PhraseCache(int(os.environ.get(sc.TTS_CACHE_BYTES_ENV, str(256 * 1024 * 1024))))

    def load(self) -> None:
        if self.backend not in ("local", "edge"):
            raise ValueError(f"{sc.TTS_BACKEND_ENV}={self.backend!r}: use local or edge")

    def warm_up(self) -> None:
        espeak("你好", self.voice)

    def formats(self) -> tuple[str, ...]:
        """The formats this service really produces: WAV always (espeak-ng), MP3 only from edge-tts."""
        return (*sc.TTS_FORMATS, "mp3") if self.backend == "edge" else sc.TTS_FORMATS

    def synthesize(self, text: str, voice: str, audio_format: str) -> tuple[bytes, str]:
        key = (audio_format, voice, text)
        cached = self.cache.get(key)
        self.registry.inc(c.CACHE_REQUESTS, tier="l1", result="hit" if cached else "miss")
        if cached is not None:
            return cached
        if audio_format == "mp3":  # no local voice makes MP3: an edge-tts failure fails the request
            audio = edge_tts_audio(text, self.edge_voice)
        else:
            with self.model():
                audio = espeak(text, voice)
        kind = CONTENT_TYPES[audio_format]
        self.cache.put(key, audio, kind)
        return audio, kind

    def speech(self, request: Request) -> Response:
        try:
            data = json.loads(request.body)
        except ValueError:
            raise RequestError('body must be JSON {"input": text}') from None
        text = data.get(sc.TTS_TEXT_KEY) if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise RequestError(f"'input' must be 1..{MAX_TEXT} characters of text")
        voice = data.get("voice") or self.voice
        if not isinstance(voice, str) or not voice.replace("-", "").replace("+", "").isalnum():
            raise RequestError("'voice' must be an espeak-ng voice name")
        audio_format = data.get(sc.TTS_FORMAT_KEY) or sc.TTS_FORMATS[0]
        if audio_format not in self.formats():
            answers = ", ".join(self.formats())
            raise RequestError(f"'{sc.TTS_FORMAT_KEY}' {audio_format!r}: this service answers {answers}")
        audio, kind = self.synthesize(text.strip(), voice, audio_format)
        return Response(audio, kind)

    def routes(self) -> dict[str, Handler]:
        return {sc.TTS.main.path: self.speech}


if __name__ == "__main__":
    main(TtsService())
