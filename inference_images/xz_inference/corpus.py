"""The ASR corpus: what devices say, in English and Chinese, spoken by several espeak-ng voices at several speeds,
with the reference text; and its scoring (word error rate for English, character error rate for Chinese).

Audio is synthesised at first use into a cache (`XZ_CORPUS_DIR`, default ~/.cache/xzctl/corpus), one WAV per
utterance named by the hash of text, voice and speed. Each sentence has one voice and speed (assigned in turn), so
a run over the corpus hears every sentence once: utterances the service has not decoded before in that run.
espeak-ng's Mandarin is a weak voice for any recogniser (it reads tones poorly): the Chinese figures are a floor.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ENGLISH = (
    "turn on the light in the kitchen",
    "what is the weather today",
    "set an alarm for seven in the morning",
    "play some music",
    "how far is the moon",
    "tell me a story about a cat",
    "what time is it now",
    "turn off the television",
    "set a timer for ten minutes",
    "what is the capital of france",
    "remind me to call my mother tomorrow",
    "how many days are there in a year",
    "open the curtains in the bedroom",
    "make the music a little louder",
    "is it going to rain this afternoon",
    "read me the news headlines",
    "what is the temperature outside",
    "stop the music please",
    "how do you spell elephant",
    "tell me a joke",
    "switch the fan to low speed",
    "what day is it today",
    "add milk to my shopping list",
    "good night and turn off all the lights",
)
CHINESE = (
    "今天天气怎么样",
    "请把客厅的灯关掉",
    "播放一首音乐",
    "明天早上七点叫我起床",
    "现在几点了",
    "给我讲一个故事",
    "打开空调",
    "北京今天会下雨吗",
    "声音大一点",
    "你叫什么名字",
    "关掉电视",
    "我想听新闻",
)
VOICES = {"en": ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f3"), "zh": ("cmn", "cmn+f3")}
SPEEDS = (150, 175, 200)  # words per minute: slow, espeak's default, brisk
SYNTH_TIMEOUT = 30.0


@dataclass(frozen=True)
class Utterance:
    text: str
    language: str  # en | zh
    voice: str
    speed: int

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.text}|{self.voice}|{self.speed}".encode()).hexdigest()[:16]


def utterances(language: str | None = None) -> list[Utterance]:
    """The corpus in a fixed order; voices and speeds taken in turn, so neighbours differ in both."""
    out: list[Utterance] = []
    for lang, sentences in (("en", ENGLISH), ("zh", CHINESE)):
        if language not in (None, lang):
            continue
        voices = VOICES[lang]
        for i, text in enumerate(sentences):
            out.append(Utterance(text, lang, voices[i % len(voices)], SPEEDS[i % len(SPEEDS)]))
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("XZ_CORPUS_DIR") or Path.home() / ".cache" / "xzctl" / "corpus")


def audio(utterance: Utterance, folder: Path | None = None) -> bytes:
    """The utterance's WAV (espeak-ng, 22.05 kHz PCM16), synthesised once and cached."""
    folder = folder or cache_dir()
    path = folder / f"{utterance.key}.wav"
    if path.is_file():
        return path.read_bytes()
    done = subprocess.run(
        ["espeak-ng", "--stdout", "-v", utterance.voice, "-s", str(utterance.speed), "--", utterance.text],
        capture_output=True,
        timeout=SYNTH_TIMEOUT,
        check=True,
    )
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(done.stdout)
    partial.replace(path)
    return done.stdout


# --- scoring ------------------------------------------------------------------------------------

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
_ONES += "seventeen eighteen nineteen"
_TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty", 6: "sixty", 7: "seventy", 8: "eighty", 9: "ninety"}


def _number_words(number: int) -> list[str]:
    """0-99 as spoken words: recognisers write numbers as digits, references spell them."""
    ones = _ONES.split()
    if number < 20:
        return [ones[number]]
    tens, rest = divmod(number, 10)
    return [_TENS[tens]] + ([ones[rest]] if rest else [])


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, numbers under 100 spelt out (`10` -> `ten`)."""
    out: list[str] = []
    for word in re.findall(r"[a-z0-9']+", text.lower()):
        out += _number_words(int(word)) if word.isdigit() and int(word) < 100 else [word]
    return out


def characters(text: str) -> list[str]:
    """The Han characters of a text (Chinese is scored per character: it has no spaces between words)."""
    return [ch for ch in text if "\u3400" <= ch <= "\u9fff"]


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over units: substitutions + deletions + insertions."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def score(reference: str, hypothesis: str, language: str) -> tuple[int, int]:
    """(errors, reference units): words for English, characters for Chinese."""
    split = characters if language == "zh" else words
    ref = split(reference)
    return word_errors(ref, split(hypothesis)), len(ref)
