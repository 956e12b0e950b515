"""Audio in and out: WAV (PCM16 mono) to 16 kHz samples, and the multipart form of OpenAI-style uploads."""

from __future__ import annotations

import io
import wave
from email.parser import BytesParser
from email.policy import HTTP

import numpy as np

from xz_inference.server import RequestError
from xzctl import service_contract as sc

RATE = sc.PCM16_16K.sample_rate  # what VAD and ASR take


def resample(samples: np.ndarray, rate: int, target: int = RATE) -> np.ndarray:
    """Band-limited resampling through the spectrum (espeak-ng speaks at 22050 Hz; the models want 16 kHz)."""
    if rate == target or len(samples) == 0:
        return samples.astype(np.int16)
    n = max(1, round(len(samples) * target / rate))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    out = np.fft.irfft(spectrum[: n // 2 + 1], n) * (n / len(samples))
    return np.clip(out, -32768, 32767).astype(np.int16)


def read_wav(data: bytes) -> np.ndarray:
    """PCM16 mono WAV bytes -> int16 samples at 16 kHz; anything else is a bad request."""
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise RequestError("audio must be PCM16 mono WAV")
            rate = w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    except (wave.Error, EOFError) as exc:
        raise RequestError(f"not a WAV file: {exc}") from None
    return resample(samples, rate)


def write_wav(samples: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return buf.getvalue()


def form_file(body: bytes, content_type: str, field: str = "file") -> bytes:
    """The `file` part of a multipart/form-data body (what OpenAI-compatible ASR clients upload)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise RequestError("expected multipart/form-data")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == field:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    raise RequestError(f"form has no {field!r} part")
