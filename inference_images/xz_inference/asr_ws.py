"""The FunASR runtime WebSocket protocol, as xiaozhi-server's `fun_server` ASR provider speaks it.

A client connects (subprotocol `binary`), sends a JSON config (`mode` offline | 2pass | online, `wav_name`,
`is_speaking: true`, FunASR's `chunk_size`/`chunk_interval`/`itn`, which this engine does not need), then binary
PCM16 16 kHz mono, then `{"is_speaking": false}`. The service answers the utterance with
`{"mode": "offline" | "2pass-offline" | "online", "text", "wav_name", "is_final": true}`; in 2pass and online modes
it also sends `{"mode": "2pass-online" | "online", "text", "is_final": false}` while audio arrives: the growing
buffer re-decoded whenever `XZ_ASR_PARTIAL_SECONDS` (0.6) more seconds of audio came in, so the partial rate is
bounded by the audio, not by how fast a client sends. A partial's text is the whole utterance heard so far (the
final replaces it, as FunASR's 2pass-offline replaces its online text). One connection may carry several
utterances. Finals are accounted like HTTP requests (requests, errors, duration from `is_speaking: false`).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from xz_inference.audio import RATE
from xzctl import service_contract as sc
from xz_inference.server import Request, RequestError, Response, Service

FINAL_MODE = {"offline": "offline", "2pass": "2pass-offline", "online": "online"}
PARTIAL_MODE = {"2pass": "2pass-online", "online": "online"}
IDLE_TIMEOUT = 30.0  # seconds a connection may stay silent before it is closed
MAX_MESSAGE = 4 * 1024 * 1024  # bytes in one WebSocket message (the provider sends an utterance's PCM in one)
MAX_AUDIO_SECONDS = 60.0  # one utterance; more is refused, not silently cut
MAX_MESSAGES = 100_000  # per connection: 60 ms frames for well over an hour


class Transcriber(Protocol):
    ready: threading.Event

    def transcribe(self, samples: np.ndarray) -> str: ...


@dataclass
class Utterance:
    """What a connection has heard since its last final result."""

    mode: str = "offline"
    wav_name: str = ""
    pcm: bytearray = field(default_factory=bytearray)
    heard_at_partial: int = 0  # bytes of audio at the last partial decode

    def samples(self) -> np.ndarray:
        usable = len(self.pcm) - len(self.pcm) % 2
        return np.frombuffer(bytes(self.pcm[:usable]), dtype=np.int16)


class Session:
    """One client's protocol state: `receive` takes one message and returns what to send back and whether the
    utterance ended (then `final` decodes it)."""

    def __init__(self, service: Transcriber, partial_seconds: float) -> None:
        self.service = service
        self.partial_bytes = int(partial_seconds * RATE) * 2
        self.utterance = Utterance()

    def receive(self, message: str | bytes) -> tuple[list[dict[str, Any]], bool]:
        if isinstance(message, bytes):
            return self._audio(message), False
        try:
            data = json.loads(message)
        except ValueError:
            raise RequestError("a text message must be a JSON object") from None
        if not isinstance(data, dict):
            raise RequestError("a text message must be a JSON object")
        if "mode" in data:
            if data["mode"] not in FINAL_MODE:
                raise RequestError(f"mode {data['mode']!r}: one of {sorted(FINAL_MODE)}")
            self.utterance.mode = data["mode"]
        if "wav_name" in data:
            self.utterance.wav_name = str(data["wav_name"])[:128]
        return [], data.get("is_speaking") is False

    def _audio(self, chunk: bytes) -> list[dict[str, Any]]:
        u = self.utterance
        if len(u.pcm) + len(chunk) > MAX_AUDIO_SECONDS * RATE * 2:
            raise RequestError(f"an utterance over {MAX_AUDIO_SECONDS:.0f} s of audio")
        u.pcm.extend(chunk)
        if u.mode not in PARTIAL_MODE or len(u.pcm) - u.heard_at_partial < self.partial_bytes:
            return []
        u.heard_at_partial = len(u.pcm)
        text = self.service.transcribe(u.samples())
        return [{"mode": PARTIAL_MODE[u.mode], "text": text, "wav_name": u.wav_name, "is_final": False}]

    def final(self) -> dict[str, Any]:
        u = self.utterance
        self.utterance = Utterance(mode=u.mode, wav_name=u.wav_name)
        text = self.service.transcribe(u.samples()) if len(u.pcm) >= 2 else ""
        return {"mode": FINAL_MODE[u.mode], "text": text, "wav_name": u.wav_name, "is_final": True}


def handle_connection(service: Service, connection: Any, partial_seconds: float) -> None:
    """Serve one WebSocket connection until the client closes it, stays idle too long or breaks the protocol."""
    from websockets.exceptions import ConnectionClosed

    if not service.ready.is_set():
        connection.close(1013, "model not ready")
        return
    session = Session(service, partial_seconds)  # type: ignore[arg-type]
    for _ in range(MAX_MESSAGES):
        try:
            message = connection.recv(timeout=IDLE_TIMEOUT)
        except TimeoutError:
            connection.close(1000, "idle")
            return
        except ConnectionClosed:
            return
        replies, error = answer(service, session, message)
        try:
            for reply in replies:
                connection.send(json.dumps(reply, ensure_ascii=False))
        except ConnectionClosed:
            return
        if error is not None:
            connection.close(1007, error[:120])
            return
    connection.close(1008, "too many messages")


def answer(service: Service, session: Session, message: str | bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The replies to one message and the error that ends the connection, if any. A final decode is accounted
    as one request of the service's metrics (counted, timed from `is_speaking: false`), like an HTTP one."""
    try:
        replies, ended = session.receive(message)
    except RequestError as exc:
        service.handle(_refuse(exc), Request(b"", {}, ""))
        return [], str(exc)
    if not ended:
        return replies, None
    finals: list[dict[str, Any]] = []

    def decode(_: Request) -> Response:
        finals.append(session.final())
        return Response.json(finals[-1])

    response = service.handle(decode, Request(b"", {}, ""))
    if response.status != 200:
        return replies, str(json.loads(response.body)["error"])
    return replies + finals, None


def _refuse(exc: RequestError) -> Callable[[Request], Response]:
    def handler(_: Request) -> Response:
        raise exc

    return handler


def start(service: Service, host: str, port: int) -> Any:
    """Serve the protocol on host:port in a background thread; returns the server (its `shutdown` stops it)."""
    from websockets.sync.server import serve

    partial_seconds = float(os.environ.get(sc.ASR_PARTIAL_SECONDS_ENV, "0.6"))
    server = serve(
        lambda connection: handle_connection(service, connection, partial_seconds),
        host,
        port,
        # `binary` when offered (upstream's provider and FunASR's Python client do), none otherwise (FunASR's own
        # server accepts a browser's bare WebSocket too)
        select_subprotocol=lambda _connection, offered: "binary" if "binary" in offered else None,
        compression=None,
        max_size=MAX_MESSAGE,
        ping_interval=None,  # the provider disables pings too; idle connections end on IDLE_TIMEOUT
        open_timeout=10,
        close_timeout=5,
    )
    threading.Thread(target=server.serve_forever, name="asr-websocket", daemon=True).start()
    return server


def funasr_client(
    url: str, pcm: bytes, *, mode: str = "offline", frame_bytes: int = 0, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """One utterance as upstream's fun_server provider sends it (config, PCM, end of speech; `frame_bytes` > 0
    sends the PCM in frames as a streaming client would); every reply up to the final one."""
    from websockets.sync.client import connect

    config = {"mode": mode, "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": "client", "is_speaking": True}
    replies: list[dict[str, Any]] = []
    with connect(url, subprotocols=["binary"], open_timeout=timeout, max_size=MAX_MESSAGE) as ws:  # type: ignore[list-item]
        ws.send(json.dumps(config))
        step = frame_bytes or len(pcm) or 1
        for start in range(0, len(pcm), step):
            ws.send(pcm[start : start + step])
        ws.send(json.dumps({"is_speaking": False}))
        for _ in range(MAX_MESSAGES):
            reply = json.loads(ws.recv(timeout=timeout))
            replies.append(reply)
            if reply.get("is_final", True):
                break
    return replies
