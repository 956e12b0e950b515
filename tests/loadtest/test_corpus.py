"""The speech devices say: a folder of WAVs (any rate, 16-bit mono), resampled to 16 kHz; bad files are bad input."""

from __future__ import annotations

import io
import wave
from array import array
from pathlib import Path

import pytest

from xzctl.errors import BadInputError
from xzctl.loadtest.corpus import RATE, load_corpus, resample


def wav(rate: int, seconds: float, channels: int = 1, width: int = 2) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(int(rate * seconds) * channels * width))
    return buf.getvalue()


def test_a_folder_of_wavs_becomes_16k_utterances(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(wav(22050, 2.0))
    (tmp_path / "b.wav").write_bytes(wav(16000, 1.5))
    (tmp_path / "notes.txt").write_text("not speech")
    corpus = load_corpus(str(tmp_path))
    assert [(u.name, round(u.seconds, 2)) for u in corpus] == [("a.wav", 2.0), ("b.wav", 1.5)]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no .wav files"),
        ({"s.wav": wav(16000, 1.0, channels=2)}, "s.wav: 2 channel(s) of 16 bits"),
        ({"s.wav": wav(16000, 1.0, width=1)}, "s.wav: 1 channel(s) of 8 bits"),
        ({"s.wav": b"RIFF nonsense"}, "s.wav: not a WAV file"),
        ({"long.wav": wav(8000, 31.0)}, "long.wav: longer than 30 s"),
    ],
)
def test_bad_corpus_is_one_line_naming_the_file(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(BadInputError) as caught:
        load_corpus(str(tmp_path))
    assert message in caught.value.one_line()


def test_a_missing_folder_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not a folder"):
        load_corpus(str(tmp_path / "nope"))


def test_resampling_keeps_the_waveform() -> None:
    line = array("h", range(-11025, 11025)).tobytes()  # a straight line, one second at 22050 Hz
    out = array("h", resample(line, 22050))
    assert len(out) == RATE
    assert out[0] == -11025 and abs(out[8000] - (-11025 + 8000 * 22050 / RATE)) <= 1
