"""The ASR corpus: its spread over voices and speeds, its cache, and its scoring per language."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from xz_inference.corpus import CHINESE, ENGLISH, Utterance, audio, score, utterances, words


def test_every_sentence_once_with_voices_and_speeds_in_turn() -> None:
    english, chinese = utterances("en"), utterances("zh")
    assert [u.text for u in english] == list(ENGLISH) and [u.text for u in chinese] == list(CHINESE)
    assert utterances() == english + chinese
    for part in (english, chinese):
        assert len({u.voice for u in part}) >= 2 and len({u.speed for u in part}) == 3
        assert all(a.voice != b.voice and a.speed != b.speed for a, b in itertools.pairwise(part))
    assert len({u.key for u in utterances()}) == len(utterances())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Set a timer for 10 minutes.", ["set", "a", "timer", "for", "ten", "minutes"]),
        ("It's 7 in the morning", ["it's", "seven", "in", "the", "morning"]),
        ("42 degrees", ["forty", "two", "degrees"]),
        ("Room 101", ["room", "101"]),  # beyond 99 digits stay digits
    ],
)
def test_words_spell_out_small_numbers_as_references_do(text: str, expected: list[str]) -> None:
    assert words(text) == expected


@pytest.mark.parametrize(
    ("reference", "hypothesis", "language", "scored"),
    [
        ("set a timer for ten minutes", "Set a timer for 10 minutes.", "en", (0, 6)),
        ("turn off the television", "turn of the television", "en", (1, 4)),
        ("今天天气怎么样", "今天天气怎么样？", "zh", (0, 7)),
        ("请把客厅的灯关掉", "请把客厅灯关掉", "zh", (1, 8)),
        ("现在几点了", "What time is it", "zh", (5, 5)),
    ],
)
def test_score_counts_words_in_english_and_characters_in_chinese(
    reference: str, hypothesis: str, language: str, scored: tuple[int, int]
) -> None:
    assert score(reference, hypothesis, language) == scored


def test_audio_comes_from_the_cache_once_synthesised(tmp_path: Path) -> None:
    utterance = Utterance("hello", "en", "en-us", 175)
    (tmp_path / f"{utterance.key}.wav").write_bytes(b"RIFF cached")
    assert audio(utterance, tmp_path) == b"RIFF cached"
