"""Whisper's features in numpy: the window follows the audio (plus 1 s), stays inside Whisper's 30 s, and a tone
lands in the mel band of its frequency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from xz_inference.whisper import N_MELS, log_mel, mel_filters, weights_dir

RATE = 16000


@pytest.mark.parametrize(
    ("seconds", "pad", "frames"),
    [
        (2.0, 1.0, 300),  # 100 frames a second: the audio and 1 s of silence, not 30 s
        (0.0, 1.0, 100),
        (2.005, 1.0, 300),  # the encoder's stride-2 convolution wants an even count
        (2.0, 28.0, 3000),  # the full window (the slow canary) is capped at Whisper's 30 s
        (45.0, 1.0, 3000),  # longer audio is cut to the window
    ],
)
def test_the_window_is_the_audio_plus_padding_within_30_seconds(seconds: float, pad: float, frames: int) -> None:
    features = log_mel(np.zeros(int(seconds * RATE), np.int16), pad)
    assert features.shape == (N_MELS, frames) and features.dtype == np.float32
    assert features.flags["C_CONTIGUOUS"]


def test_a_tone_lands_in_the_mel_band_of_its_frequency() -> None:
    t = np.arange(RATE) / RATE
    bands = []
    for hz in (300.0, 1000.0, 4000.0):
        features = log_mel((np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16))
        bands.append(int(np.argmax(features[:, 50])))
    assert bands == sorted(bands) and len(set(bands)) == 3
    # the filters cover the spectrum with non-negative triangles whose peaks rise with frequency
    filters = mel_filters()
    assert filters.shape == (N_MELS, 201) and (filters >= 0).all()
    assert list(np.argmax(filters, axis=1)) == sorted(np.argmax(filters, axis=1))


def test_an_unknown_model_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="known sizes"):
        weights_dir("large-v3", tmp_path)
