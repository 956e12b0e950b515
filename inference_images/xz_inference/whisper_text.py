"""Whisper's text side without a tokenizer library: token ids <-> strings from the model's `vocabulary.txt` (one
token a line, the line number is the id, GPT-2 byte-level alphabet), the prompt, and the repetition guard.

A decoder run on a window sized to the audio (not 30 s) sometimes starts the sentence again at the end ("set a timer
for ten minutes. Set a timer"): `cut_repeats` removes such a tail and any phrase said more than twice in a row.
"""

from __future__ import annotations

import re
from pathlib import Path

# Languages the multilingual models are asked for by name (the service's XZ_LANGUAGE); `auto` detects.
LANGUAGES = ("en", "zh")


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's reversible map of the 256 byte values to printable characters, inverted (character -> byte)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


_BYTES = _byte_alphabet()


class Vocabulary:
    """The model's tokens: ids of the special tokens the prompt needs, and text from generated ids."""

    def __init__(self, path: Path, *, multilingual: bool) -> None:
        self.tokens = path.read_text(encoding="utf-8").split("\n")
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        self.multilingual = multilingual

    def id(self, token: str) -> int:
        if token not in self.ids:
            raise ValueError(f"the model's vocabulary has no {token}")
        return self.ids[token]

    def prompt(self, language: str | None) -> list[int]:
        """Start of transcript, the language and task (multilingual models only), no timestamps."""
        head = [self.id("<|startoftranscript|>")]
        if self.multilingual:
            head += [self.id(f"<|{language or 'en'}|>"), self.id("<|transcribe|>")]
        return [*head, self.id("<|notimestamps|>")]

    def text(self, ids: list[int]) -> str:
        """Generated ids to text: special tokens dropped, the byte-level characters joined and decoded as UTF-8."""
        first_special = self.id("<|endoftext|>")
        joined = "".join(self.tokens[i] for i in ids if 0 <= i < first_special)
        data = bytes(_BYTES[ch] for ch in joined if ch in _BYTES)
        return data.decode("utf-8", errors="ignore").strip()


_WORD = re.compile(r"\w+", re.UNICODE)


def cut_repeats(text: str, *, max_phrase: int = 12, min_restart: int = 3) -> str:
    """The text without the decoder's repetitions.

    - A tail that restarts the text (its first `min_restart` or more units said again at the end, or two after a
      full stop) is cut.
    - A phrase of up to `max_phrase` units repeated back to back more than twice keeps two of its copies.
    Units are words (CJK: characters); the cut is made in the original text, so punctuation and case survive.
    """
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    units: list[tuple[str, int, int]] = []
    for word, (start, end) in zip(_WORD.findall(text.lower()), spans, strict=True):
        if any("\u3400" <= ch <= "\u9fff" for ch in word):
            units.extend((ch, start + i, start + i + 1) for i, ch in enumerate(word))
        else:
            units.append((word, start, end))
    words = [u[0] for u in units]
    keep = len(words)
    # a loop of one phrase: keep two copies
    for size in range(1, max_phrase + 1):
        for start in range(0, len(words) - 3 * size + 1):
            phrase = words[start : start + size]
            if words[start + size : start + 2 * size] == phrase and words[start + 2 * size : start + 3 * size] == phrase:
                keep = min(keep, start + 2 * size)
                break
    # the sentence started again at the end (after a sentence's end, two units are enough to tell)
    for begin in range(max(1, keep // 2), keep - 1):
        tail = words[begin:keep]
        after_stop = text[: units[begin][1]].rstrip().endswith((".", "?", "!", "。", "？", "！"))
        if len(tail) >= (2 if after_stop else min_restart) and words[: len(tail)] == tail and begin >= len(tail):
            keep = begin
            break
    if keep == len(words):
        return text.strip()
    # cut where the repeat starts: the sentence's own full stop stays, a dangling comma goes
    return text[: units[keep][1]].strip().rstrip(",;，、 ")


def tokens_budget(seconds: float, language: str | None) -> int:
    """At most this many generated tokens for this much audio: generous for speech (English ~4 tokens/s, Chinese
    ~6), so a decoder stuck in a loop stops early instead of filling Whisper's 448-token window."""
    per_second = 10 if language == "zh" or language is None else 6
    return max(16, min(440, int(per_second * seconds) + 12))

