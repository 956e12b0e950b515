"""One device speaking the real xiaozhi protocol to a node's upstream server, synchronously.

What an ESP32 does: POST the OTA endpoint for its WebSocket token, open the WebSocket with the headers
Device-Id, Client-Id and `Authorization: Bearer <token>`, say hello (it answers hello with a session id),
then per turn `listen start` in auto mode and stream its speech as Opus packets (16 kHz mono, 60 ms) in real
time, followed by silence until the server's VAD ends the utterance: the server answers `stt` (the transcript),
`llm` (an emotion), `tts start`, `tts sentence_start`, Opus frames of the reply and `tts stop`.

Latencies are measured from the end of the device's speech (when its last speech frame was sent): to the `stt`
message, to the first downlink Opus frame, to `tts stop`. They include the server's end-of-speech silence
wait, as a user hears it. Every read has a deadline and a size cap; what the server sends is data (a
message that is not a JSON object of known shape is counted, never followed).

The client is synchronous (websockets' sync client) so that a Locust user drives it under gevent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

from xzctl.errors import ExternalToolError
from xzctl.metrics.contract import TURN_FAILURE_KINDS

SAMPLE_RATE = 16000
FRAME_MS = 60
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 960
FRAME_BYTES = FRAME_SAMPLES * 2  # 16-bit mono PCM
MAX_MESSAGE_BYTES = 256 * 1024  # a reply Opus frame is < 1 KiB, a text message a few KiB
MAX_OTA_BYTES = 64 * 1024
MAX_TRANSCRIPT_CHARS = 2000
MAX_TOKEN_CHARS = 1024  # upstream's token: a base64 HMAC-SHA256 and a timestamp, ~55 characters
HELLO = {
    "type": "hello",
    "version": 1,
    "transport": "websocket",
    "audio_params": {"format": "opus", "sample_rate": SAMPLE_RATE, "channels": 1, "frame_duration": FRAME_MS},
}


class DeviceError(ExternalToolError):
    """The device could not connect; `failure` is the turn-failure kind (connect or auth)."""

    def __init__(self, failure: str, message: str) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class TurnResult:
    ok: bool
    failure: str | None  # one of TURN_FAILURE_KINDS when not ok
    stt_seconds: float | None
    first_audio_seconds: float | None
    turn_seconds: float | None
    transcript: str | None
    audio_frames: int = 0


def failed(kind: str) -> TurnResult:
    assert kind in TURN_FAILURE_KINDS, kind
    return TurnResult(False, kind, None, None, None, None)


def encode_opus(pcm16k: bytes) -> list[bytes]:
    """16 kHz mono 16-bit PCM as 60 ms Opus packets (the last frame padded with silence)."""
    import opuslib_next

    encoder = opuslib_next.Encoder(SAMPLE_RATE, 1, opuslib_next.APPLICATION_VOIP)
    packets = []
    for start in range(0, len(pcm16k), FRAME_BYTES):
        frame = pcm16k[start : start + FRAME_BYTES].ljust(FRAME_BYTES, b"\0")
        packets.append(bytes(encoder.encode(frame, FRAME_SAMPLES)))
    return packets


class _Turn:
    """What one turn has seen so far, timed from the end of speech."""

    def __init__(self) -> None:
        self.speech_end: float | None = None
        self.stt: float | None = None
        self.transcript: str | None = None
        self.first_audio: float | None = None
        self.stop: float | None = None
        self.frames = 0

    def since_speech(self, now: float) -> float:
        return now - self.speech_end if self.speech_end is not None else 0.0

    def on_text(self, message: dict[str, Any], now: float) -> None:
        kind, state = message.get("type"), message.get("state")
        if kind == "stt" and self.stt is None:
            text = message.get("text")
            self.transcript = text[:MAX_TRANSCRIPT_CHARS] if isinstance(text, str) else ""
            self.stt = now
        elif kind == "tts" and state == "stop" and self.stt is not None:
            self.stop = now

    def on_audio(self, now: float) -> None:
        # audio before the transcript is a leftover of an earlier reply, not this turn's
        if self.stt is not None:
            self.frames += 1
            if self.first_audio is None:
                self.first_audio = now

    def result(self, failure: str | None) -> TurnResult:
        def since(t: float | None) -> float | None:
            return None if t is None or self.speech_end is None else max(0.0, t - self.speech_end)

        ok = failure is None
        return TurnResult(
            ok, failure, since(self.stt), since(self.first_audio), since(self.stop), self.transcript, self.frames
        )


class DeviceClient:
    """One device: `connect()` (OTA token, WebSocket, hello), then `turn(pcm)` as often as wanted, `close()`.

    `timeout` bounds each connect step and, per turn, the wait after the end of speech for the whole reply."""

    def __init__(self, ws_url: str, ota_url: str, device_id: str, *, timeout: float) -> None:
        self.ws_url = ws_url
        self.ota_url = ota_url
        self.device_id = device_id
        self.client_id = str(uuid.uuid5(uuid.NAMESPACE_URL, device_id))
        self.timeout = timeout
        self.session_id: str | None = None
        self.token: str | None = None
        self.ignored_messages = 0  # server messages that were not JSON objects of a known shape
        self._ws: Any = None

    def fetch_token(self) -> str:
        """The WebSocket token from the OTA endpoint (empty when the server does not require auth)."""
        headers = {"Device-Id": self.device_id, "Client-Id": self.client_id, "Content-Type": "application/json"}
        body = {"application": {"version": "1.0.0"}, "board": {"type": "xzctl-probe"}}
        try:
            with requests.post(self.ota_url, json=body, headers=headers, timeout=self.timeout, stream=True) as resp:
                resp.raise_for_status()
                raw = resp.raw.read(MAX_OTA_BYTES + 1, decode_content=True)
        except requests.RequestException as exc:
            raise DeviceError("connect", f"OTA {self.ota_url}: {type(exc).__name__}") from exc
        try:
            token = json.loads(raw[:MAX_OTA_BYTES])["websocket"]["token"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DeviceError("connect", f"OTA {self.ota_url}: no websocket token in the answer") from exc
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise DeviceError("connect", f"OTA {self.ota_url}: the websocket token is not a string of a token's size")
        return token

    def connect(self, token: str | None = None) -> None:
        """OTA for the token (unless given), then the WebSocket and hello. Raises DeviceError (connect or auth)."""
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        self.token = self.fetch_token() if token is None else token
        headers = {"Device-Id": self.device_id, "Client-Id": self.client_id, "Protocol-Version": "1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            # entered as a context manager (newer websockets want it so); close() leaves it
            self._ws = connect(
                self.ws_url,
                additional_headers=headers,
                open_timeout=self.timeout,
                close_timeout=min(self.timeout, 5.0),
                max_size=MAX_MESSAGE_BYTES,
                compression=None,
            ).__enter__()
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise DeviceError(
                "auth" if status in (401, 403) else "connect", f"WebSocket refused: HTTP {status}"
            ) from exc
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise DeviceError("connect", f"WebSocket {self.ws_url}: {type(exc).__name__}") from exc
        try:
            self.session_id = self._hello()
        except BaseException:
            self.close()
            raise

    def _hello(self) -> str:
        from websockets.exceptions import ConnectionClosed

        try:
            self._ws.send(json.dumps(HELLO))
            return self._await_hello()
        except ConnectionClosed as exc:
            # upstream accepts the WebSocket, then closes it when the token does not verify
            raise DeviceError("auth", "the server closed the connection before hello (token refused?)") from exc

    def _await_hello(self) -> str:
        deadline = time.monotonic() + self.timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                data = self._ws.recv(timeout=left)
            except TimeoutError:
                break
            message = self._parse(data)
            if message and message.get("type") == "hello" and isinstance(message.get("session_id"), str):
                return str(message["session_id"])[:128]
        raise DeviceError("connect", f"no hello from the server within {self.timeout:g}s")

    def _parse(self, data: str | bytes) -> dict[str, Any] | None:
        if isinstance(data, bytes):
            return None
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.ignored_messages += 1
            return None
        return message

    def send_packet(self, packet: bytes) -> None:
        """One raw uplink audio packet (the tests send malformed ones)."""
        self._ws.send(packet)

    def turn(self, pcm16k: bytes, *, before_speech: Sequence[bytes] = ()) -> TurnResult:
        """Speak `pcm16k` (16 kHz mono 16-bit) in real time, then silence until the transcript; wait for the reply.

        `before_speech`: raw packets sent right after `listen start` (a malformed frame the server must drop)."""
        from websockets.exceptions import ConnectionClosed, WebSocketException

        if self._ws is None:
            return failed("closed")
        silence = encode_opus(b"\0" * FRAME_BYTES)[0]
        speech = encode_opus(pcm16k) or [silence]
        turn = _Turn()
        try:
            self._ws.send(
                json.dumps({"type": "listen", "state": "start", "mode": "auto", "session_id": self.session_id})
            )
            for packet in before_speech:
                self._ws.send(packet)
            return self._run(turn, speech, silence)
        except ConnectionClosed:
            self._ws = None
            return turn.result("closed")
        except (OSError, WebSocketException):
            self._ws = None
            return turn.result("error")

    def _run(self, turn: _Turn, speech: list[bytes], silence: bytes) -> TurnResult:
        frame = FRAME_MS / 1000
        start = time.monotonic()
        sent = 0
        # bounded: speech frames, then the reply's deadline (after which the loop returns)
        while True:
            now = time.monotonic()
            if turn.stt is None and now >= start + sent * frame:
                # real time: the server's VAD measures silence by the clock
                self._ws.send(speech[sent] if sent < len(speech) else silence)
                sent += 1
                if sent == len(speech):
                    turn.speech_end = time.monotonic()
                continue
            if turn.speech_end is not None and turn.since_speech(now) > self.timeout:
                return turn.result(self._timeout_kind(turn))
            wait = start + sent * frame - now if turn.stt is None else self.timeout - turn.since_speech(now)
            try:
                data = self._ws.recv(timeout=max(0.0, min(wait, self.timeout)))
            except TimeoutError:
                continue
            now = time.monotonic()
            if isinstance(data, bytes):
                turn.on_audio(now)
                continue
            message = self._parse(data)
            if message is not None:
                turn.on_text(message, now)
            if turn.stop is not None:
                return turn.result(None if turn.first_audio is not None else "no_audio")

    @staticmethod
    def _timeout_kind(turn: _Turn) -> str:
        if turn.stt is None:
            return "no_transcript"
        return "no_audio" if turn.first_audio is None else "timeout"

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            ws.__exit__(None, None, None)
