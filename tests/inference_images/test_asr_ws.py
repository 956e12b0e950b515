"""The FunASR protocol's decisions with a fake transcriber: which messages come back, when partials are decoded,
what is refused. The real service speaks it over a socket in test_services.py."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from xz_inference.asr_ws import MAX_AUDIO_SECONDS, Session
from xz_inference.server import RequestError

RATE = 16000


class FakeTranscriber:
    """Says how many samples it was given, so a test sees what each decode heard."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.decodes: list[int] = []

    def transcribe(self, samples: np.ndarray) -> str:
        self.decodes.append(len(samples))
        return f"{len(samples)} samples"


def _config(mode: str) -> str:
    # what upstream's fun_server provider sends first
    return json.dumps(
        {"mode": mode, "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": "dev-1", "is_speaking": True}
    )


def _talk(session: Session, mode: str, seconds: float, frame_ms: int = 100) -> list[dict[str, object]]:
    """A client's whole utterance: config, PCM frames, end of speech; every reply in order."""
    replies: list[dict[str, object]] = []
    replies += session.receive(_config(mode))[0]
    frame = bytes(int(RATE * frame_ms / 1000) * 2)
    for _ in range(round(seconds * 1000 / frame_ms)):
        replies += session.receive(frame)[0]
    sent, ended = session.receive(json.dumps({"is_speaking": False}))
    assert ended and not sent
    return [*replies, session.final()]


@pytest.mark.parametrize(
    ("mode", "seconds", "partial_seconds", "partials", "partial_mode", "final_mode"),
    [
        ("offline", 3.0, 0.6, 0, None, "offline"),
        ("2pass", 3.0, 0.6, 5, "2pass-online", "2pass-offline"),  # one per 0.6 s of audio, not per frame
        ("2pass", 3.0, 1.0, 3, "2pass-online", "2pass-offline"),
        ("online", 1.2, 0.6, 2, "online", "online"),
        ("2pass", 0.3, 0.6, 0, None, "2pass-offline"),  # shorter than one partial interval
    ],
)
def test_replies_per_mode_partials_bounded_by_the_audio(  # noqa: PLR0917 (one parameter per table column)
    mode: str, seconds: float, partial_seconds: float, partials: int, partial_mode: str | None, final_mode: str
) -> None:
    fake = FakeTranscriber()
    replies = _talk(Session(fake, partial_seconds), mode, seconds)
    assert len(replies) == partials + 1
    assert all(r["mode"] == partial_mode and r["is_final"] is False for r in replies[:-1])
    final = replies[-1]
    assert final == {
        "mode": final_mode,
        "text": f"{int(seconds * RATE)} samples",
        "wav_name": "dev-1",
        "is_final": True,
    }
    # each partial re-decodes the whole buffer heard so far
    step = int(partial_seconds * RATE)
    assert fake.decodes[:-1] == [step * (i + 1) for i in range(partials)]


def test_one_connection_carries_utterances_one_after_another() -> None:
    session = Session(FakeTranscriber(), 0.6)
    first = _talk(session, "offline", 1.0)
    second = _talk(session, "offline", 0.5)
    assert [r["text"] for r in (first[-1], second[-1])] == ["16000 samples", "8000 samples"]


def test_end_of_speech_without_audio_answers_empty_text() -> None:
    fake = FakeTranscriber()
    session = Session(fake, 0.6)
    session.receive(_config("offline"))
    assert session.receive(json.dumps({"is_speaking": False})) == ([], True)
    assert session.final()["text"] == "" and fake.decodes == []


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "JSON object"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"mode": "streaming"}), "mode 'streaming'"),
    ],
)
def test_bad_messages_are_refused_with_the_reason(message: str, error: str) -> None:
    with pytest.raises(RequestError, match=error):
        Session(FakeTranscriber(), 0.6).receive(message)


def test_an_utterance_longer_than_the_limit_is_refused_not_cut() -> None:
    session = Session(FakeTranscriber(), 0.6)
    session.receive(_config("offline"))
    session.receive(bytes(int(MAX_AUDIO_SECONDS * RATE) * 2))
    with pytest.raises(RequestError, match="over"):
        session.receive(bytes(2))
