"""Whisper's text side: the repetition guard, the token budget, the prompt and byte-level decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
from xz_inference.whisper_text import _BYTES, Vocabulary, cut_repeats, tokens_budget


@pytest.mark.parametrize(
    ("decoded", "kept"),
    [
        ("Set a timer for 10 minutes.", "Set a timer for 10 minutes."),
        # the decoder started the sentence again at the end of a short window
        ("Set a timer for 10 minutes. Set a timer", "Set a timer for 10 minutes."),
        ("Turn on the light in the kitchen. Turn on the light", "Turn on the light in the kitchen."),
        ("Tell me a story about a cat. Tell me", "Tell me a story about a cat."),
        ("How do you spell elephant? How do", "How do you spell elephant?"),
        # a phrase in a loop keeps two copies
        ("play music play music play music play music", "play music play music"),
        ("no no no no no no", "no no"),
        ("1, 2, 1, 1, 1, 1, 1", "1, 2, 1, 1"),
        # Chinese counts characters
        ("好的好的好的好的", "好的好的"),
        ("今天天气怎么样今天天气", "今天天气怎么样"),
        # real speech that repeats twice, or restarts with fewer than three words, stays whole
        ("very very good", "very very good"),
        ("the cat saw the cat", "the cat saw the cat"),
        ("Stop. Stop the music. Stop", "Stop. Stop the music. Stop"),  # one unit is never a restart
        ("I said I said it", "I said I said it"),
        ("", ""),
    ],
)
def test_cut_repeats_removes_the_decoders_loops_and_restarts_only(decoded: str, kept: str) -> None:
    assert cut_repeats(decoded) == kept


@pytest.mark.parametrize(
    ("seconds", "language", "budget"),
    [(0.0, "en", 16), (2.0, "en", 24), (10.0, "en", 72), (2.0, "zh", 32), (2.0, None, 32), (600.0, "zh", 440)],
)
def test_token_budget_follows_the_audio_and_stays_inside_whispers_window(
    seconds: float, language: str | None, budget: int
) -> None:
    assert tokens_budget(seconds, language) == budget


def _token(text: str) -> str:
    """A byte-level token as vocabulary.txt spells it."""
    to_char = {b: ch for ch, b in _BYTES.items()}
    return "".join(to_char[b] for b in text.encode())


@pytest.fixture
def vocabulary_file(tmp_path: Path) -> Path:
    tokens = [_token("Hello"), _token(" world"), _token("你"), _token("好"), "<|endoftext|>"]
    tokens += ["<|startoftranscript|>", "<|en|>", "<|zh|>", "<|transcribe|>", "<|notimestamps|>"]
    path = tmp_path / "vocabulary.txt"
    path.write_text("\n".join(tokens), encoding="utf-8")
    return path


def test_vocabulary_decodes_bytes_and_drops_special_tokens(vocabulary_file: Path) -> None:
    vocabulary = Vocabulary(vocabulary_file, multilingual=True)
    assert vocabulary.text([0, 1, 4]) == "Hello world"
    assert vocabulary.text([2, 3, 9]) == "你好"


@pytest.mark.parametrize(
    ("multilingual", "language", "prompt"),
    [(False, None, [5, 9]), (False, "en", [5, 9]), (True, "en", [5, 6, 8, 9]), (True, "zh", [5, 7, 8, 9])],
)
def test_prompt_names_language_and_task_for_multilingual_models_only(
    vocabulary_file: Path, multilingual: bool, language: str | None, prompt: list[int]
) -> None:
    assert Vocabulary(vocabulary_file, multilingual=multilingual).prompt(language) == prompt


def test_a_vocabulary_without_a_special_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vocabulary.txt"
    path.write_text("a\nb", encoding="utf-8")
    with pytest.raises(ValueError, match="startoftranscript"):
        Vocabulary(path, multilingual=False).prompt(None)
