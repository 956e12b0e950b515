"""What the emulated devices say: 16 kHz mono PCM16 speech, from a folder of WAVs or synthesised once with espeak-ng.

The built-in corpus is made at first use and cached outside the clone (`$XDG_CACHE_HOME/xzctl/loadtest/corpus`), so
a run costs no synthesis; a site gives its own recordings with `--corpus DIR`.
"""

from __future__ import annotations

import hashlib
import io
import os
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

from xzctl.errors import BadInputError
from xzctl.loadtest.speech import speak

RATE = 16000
MAX_UTTERANCE_SECONDS = 30.0  # a device's turn is a sentence; longer files are not turns
MAX_FILES = 1000
# English: the sandbox's real node transcribes with pocketsphinx's English model.
SENTENCES = (
    "what is the weather like tomorrow",
    "please turn on the living room light",
    "set a timer for ten minutes",
    "tell me a joke about robots",
    "how many days are there until friday",
    "play the news from this morning",
    "what is the capital of france",
    "remind me to call my mother tonight",
)


@dataclass(frozen=True)
class Utterance:
    name: str
    pcm: bytes  # 16 kHz mono signed 16-bit little endian

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / RATE


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "xzctl" / "loadtest" / "corpus"


def load_corpus(folder: str | None) -> list[Utterance]:
    """The utterances of `folder` (every *.wav in it), or the built-in corpus."""
    if folder is None:
        return builtin_corpus()
    root = Path(folder)
    if not root.is_dir():
        raise BadInputError(f"--corpus {folder}: not a folder", hint="give a folder of WAV files")
    paths = sorted(root.glob("*.wav"))[:MAX_FILES]
    if not paths:
        raise BadInputError(f"--corpus {folder}: no .wav files in it")
    return [Utterance(p.name, read_wav(p.read_bytes(), p.name)) for p in paths]


def builtin_corpus(voice: str = "en-us") -> list[Utterance]:
    key = hashlib.sha256(("\n".join(SENTENCES) + voice).encode()).hexdigest()[:12]
    folder = cache_dir() / key
    out = []
    for i, text in enumerate(SENTENCES):
        path = folder / f"{i:02d}.wav"
        if not path.exists():
            _write_once(path, to_wav(speak(text, voice)))
        out.append(Utterance(text, read_wav(path.read_bytes(), str(path))))
    return out


def _write_once(path: Path, data: bytes) -> None:
    # temp + rename: a worker reading the cache while another writes it never sees half a file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def read_wav(data: bytes, name: str) -> bytes:
    """PCM16 mono WAV at any rate -> 16 kHz PCM16 bytes; anything else is bad input naming the file."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            if width != 2 or channels != 1:
                raise BadInputError(
                    f"{name}: {channels} channel(s) of {8 * width} bits", hint="give 16-bit mono WAV files"
                )
            # read to the bound, not to the header's count: espeak-ng's --stdout header says 2^31 frames
            limit = int(MAX_UTTERANCE_SECONDS * rate)
            pcm = w.readframes(limit + 1)
            if len(pcm) > 2 * limit:
                raise BadInputError(f"{name}: longer than {MAX_UTTERANCE_SECONDS:g} s, not one turn's speech")
    except (wave.Error, EOFError) as exc:
        raise BadInputError(f"{name}: not a WAV file ({exc})") from None
    return resample(pcm, rate)


def resample(pcm: bytes, rate: int) -> bytes:
    """Linear interpolation to 16 kHz: enough for speech an ASR model is to hear (espeak-ng speaks at 22050 Hz)."""
    if rate == RATE:
        return pcm
    source = array("h", pcm)
    n = len(source) * RATE // rate
    out = array("h", bytes(2 * n))
    step = rate / RATE
    last = len(source) - 1
    for i in range(n):
        x = i * step
        j = int(x)
        k = min(j + 1, last)
        out[i] = round(source[j] + (source[k] - source[j]) * (x - j))
    return out.tobytes()


def to_wav(pcm: bytes) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    return buf.getvalue()
