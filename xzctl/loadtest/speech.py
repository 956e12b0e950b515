"""What a test device says: known text spoken by espeak-ng, as 16 kHz mono 16-bit PCM (what `DeviceClient.turn`
takes). espeak-ng is a Debian package the inference images already install."""

from __future__ import annotations

import io
import subprocess
import wave

from xzctl.errors import ExternalToolError

RATE = 16000
SPEAK_TIMEOUT = 30.0
MAX_WAV_BYTES = 16 * 1024 * 1024


def speak(text: str, voice: str = "en-us") -> bytes:
    """`text` spoken by espeak-ng, resampled to 16 kHz PCM16 (linear interpolation: the ASR hears speech, not hi-fi)."""
    import numpy as np

    try:
        done = subprocess.run(
            ["espeak-ng", "--stdout", "-v", voice, "--", text],
            capture_output=True,
            timeout=SPEAK_TIMEOUT,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ExternalToolError(
            f"espeak-ng could not speak: {type(exc).__name__}", hint="apt-get install espeak-ng"
        ) from exc
    with wave.open(io.BytesIO(done.stdout[:MAX_WAV_BYTES])) as wav:
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float64)
    count = int(len(samples) * RATE / rate)
    resampled = np.interp(np.arange(count) * rate / RATE, np.arange(len(samples)), samples)
    return bytes(np.clip(resampled, -32768, 32767).astype("<i2").tobytes())
