"""The device's turn decisions against a scripted WebSocket: what the server sends when decides ok or the failure
kind; the protocol against the real upstream server is in tests/sandbox/test_xiaozhi.py."""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field

import pytest
from websockets.exceptions import ConnectionClosedError

from xzctl.loadtest.device import FRAME_BYTES, DeviceClient, DeviceError, TurnResult, encode_opus
from xzctl.metrics.contract import TURN_FAILURE_KINDS

TIMEOUT = 0.4
STT = json.dumps({"type": "stt", "text": "turn on the light", "session_id": "s"})
START = json.dumps({"type": "tts", "state": "start"})
STOP = json.dumps({"type": "tts", "state": "stop"})
AUDIO = b"\xf8\xff\xfe"
CLOSED = "closed"  # the script's marker: the server drops the connection here


@dataclass
class ScriptedSocket:
    """Answers each scripted message once `after` uplink frames have been sent (speech is one frame)."""

    script: list[tuple[int, str | bytes]]
    sent: list[str | bytes] = field(default_factory=list)

    def frames(self) -> int:
        return sum(isinstance(m, bytes) for m in self.sent)

    def send(self, message: str | bytes) -> None:
        self.sent.append(message)

    def recv(self, timeout: float) -> str | bytes:
        if self.script and self.frames() >= self.script[0][0]:
            message = self.script.pop(0)[1]
            if message == CLOSED:
                raise ConnectionClosedError(None, None)
            return message
        time.sleep(min(timeout, 0.01))  # a blocking recv that got nothing within its timeout
        raise TimeoutError

    def __exit__(self, *exc: object) -> None:
        pass


def client(script: list[tuple[int, str | bytes]]) -> tuple[DeviceClient, ScriptedSocket]:
    device = DeviceClient("ws://127.0.0.1:9/xiaozhi/v1/", "http://127.0.0.1:9/xiaozhi/ota/", "d1", timeout=TIMEOUT)
    socket = ScriptedSocket(script)
    device._ws = socket
    return device, socket


ONE_FRAME = b"\x01\x00" * (FRAME_BYTES // 2)


@pytest.mark.parametrize(
    ("script", "failure"),
    [
        ([(3, STT), (3, START), (3, AUDIO), (3, AUDIO), (3, STOP)], None),
        ([(1, AUDIO), (3, STT), (3, AUDIO), (3, STOP)], None),  # audio before the transcript is an old reply's
        ([(1, "not json"), (1, "[1]"), (3, STT), (3, AUDIO), (3, STOP)], None),  # not a message: counted, ignored
        ([], "no_transcript"),  # ASR down: upstream sends nothing
        ([(2, STT), (2, STOP)], "no_audio"),  # TTS down: the reply ends without audio
        ([(2, STT)], "no_audio"),
        ([(2, STT), (2, AUDIO)], "timeout"),  # audio started, never stopped
        ([(2, STT), (2, CLOSED)], "closed"),  # server killed mid-turn
    ],
)
def test_turn_outcome(script: list[tuple[int, str | bytes]], failure: str | None) -> None:
    messages = [m for _, m in script]
    reply_frames = messages[messages.index(STT) :].count(AUDIO) if STT in messages else 0
    device, socket = client(script)
    started = time.monotonic()
    result = device.turn(ONE_FRAME)
    assert result.failure == failure
    assert result.ok is (failure is None)
    assert failure is None or failure in TURN_FAILURE_KINDS
    assert time.monotonic() - started < 0.06 * 4 + TIMEOUT + 1.0  # bounded: speech, silence, then the timeout
    assert json.loads(str(socket.sent[0])) == {"type": "listen", "state": "start", "mode": "auto", "session_id": None}
    if failure is None:
        assert result.transcript == "turn on the light"
        assert result.stt_seconds is not None and result.first_audio_seconds is not None
        assert result.turn_seconds is not None
        assert 0 <= result.stt_seconds <= result.first_audio_seconds <= result.turn_seconds
        assert result.audio_frames == reply_frames


def test_ignored_messages_are_counted() -> None:
    device, _ = client([(1, "not json"), (1, "[1]"), (3, STT), (3, AUDIO), (3, STOP)])
    assert device.turn(ONE_FRAME).ok
    assert device.ignored_messages == 2


def test_silence_streams_until_the_transcript_then_stops() -> None:
    """Auto mode: the server's VAD ends the utterance by the clock, so silence follows the speech in real time."""
    device, socket = client([(5, STT), (5, AUDIO), (5, STOP)])
    assert device.turn(ONE_FRAME * 2).ok
    assert socket.frames() == 5
    assert socket.sent[1] == encode_opus(ONE_FRAME)[0]


def test_malformed_packets_go_after_listen_start() -> None:
    device, socket = client([(3, STT), (3, AUDIO), (3, STOP)])
    assert device.turn(ONE_FRAME, before_speech=[b"\x00garbage"]).ok
    assert socket.sent[1] == b"\x00garbage"


def test_turn_without_connection_is_closed() -> None:
    device = DeviceClient("ws://127.0.0.1:9/", "http://127.0.0.1:9/", "d1", timeout=TIMEOUT)
    assert device.turn(ONE_FRAME) == TurnResult(False, "closed", None, None, None, None)


def test_hello_refused_is_auth() -> None:
    device, _ = client([(0, CLOSED)])
    with pytest.raises(DeviceError) as caught:
        device._hello()
    assert caught.value.failure == "auth"


def test_no_hello_is_connect() -> None:
    device, _ = client([(0, json.dumps({"type": "hello"}))])  # no session id: not a hello
    with pytest.raises(DeviceError) as caught:
        device._hello()
    assert caught.value.failure == "connect"


def test_unreachable_ota_is_connect() -> None:
    device = DeviceClient("ws://127.0.0.1:9/", "http://127.0.0.1:9/xiaozhi/ota/", "d1", timeout=TIMEOUT)
    with pytest.raises(DeviceError) as caught:
        device.connect()
    assert caught.value.failure == "connect"
    assert "127.0.0.1:9" in caught.value.message


def test_opus_frames_are_60_ms() -> None:
    packets = encode_opus(ONE_FRAME * 3 + ONE_FRAME[:100])
    assert len(packets) == 4  # the last partial frame padded
    assert all(0 < len(p) < 400 for p in packets)


class RawBody(io.BytesIO):
    def read(self, size: int | None = -1, decode_content: bool = True) -> bytes:  # noqa: ARG002 - urllib3's signature
        return super().read(size)


class FakeOtaAnswer:
    """What `requests.post(..., stream=True)` gives: a context manager with a raw body."""

    def __init__(self, body: bytes) -> None:
        self.raw = RawBody(body)

    def __enter__(self) -> FakeOtaAnswer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def raise_for_status(self) -> None:
        pass


@pytest.mark.parametrize(
    ("body", "token"),
    [
        (b'{"websocket": {"url": "ws://x/", "token": "c2ln.1700000000"}}', "c2ln.1700000000"),
        (b'{"websocket": {"url": "ws://x/", "token": ""}}', ""),  # auth disabled upstream
        (b'{"mqtt": {}}', None),
        (b'{"websocket": {"token": 42}}', None),
        (b'{"websocket": {"token": "' + b"a" * 5000 + b'"}}', None),
        (b"<html>not json</html>", None),
        (
            b'{"websocket": {"token": "t"}, "pad": "' + b"x" * 100_000 + b'"}',
            None,
        ),  # over the size cap: cut, unparsable
    ],
    ids=["token", "auth-off", "no-websocket", "not-a-string", "oversized-token", "not-json", "oversized-answer"],
)
def test_ota_answer_is_data(monkeypatch: pytest.MonkeyPatch, body: bytes, token: str | None) -> None:
    monkeypatch.setattr("requests.post", lambda *_a, **_k: FakeOtaAnswer(body))
    device = DeviceClient("ws://127.0.0.1:9/", "http://127.0.0.1:9/xiaozhi/ota/", "d1", timeout=TIMEOUT)
    if token is not None:
        assert device.fetch_token() == token
    else:
        with pytest.raises(DeviceError) as caught:
            device.fetch_token()
        assert caught.value.failure == "connect"
