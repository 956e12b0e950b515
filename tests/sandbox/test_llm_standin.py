"""The LLM stand-in's answers: deterministic, named as the stand-in, the same text plain and streamed."""

from __future__ import annotations

from typing import Any

import pytest

from xzctl.sandbox.llm_standin import MAX_ECHO_CHARS, MODEL, chunks, completion, reply_text

TOOLS = [{"type": "function", "function": {"name": "handle_exit_intent", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    ("messages", "reply"),
    [
        (
            [{"role": "user", "content": "turn on the light"}],
            "This is the sandbox stand-in. You said: turn on the light.",
        ),
        (
            [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "x"},
                {"role": "user", "content": "  last\n one "},
            ],
            "This is the sandbox stand-in. You said: last one.",
        ),
        ([{"role": "system", "content": "prompt"}], "This is the sandbox stand-in."),
        ([{"role": "user", "content": [{"type": "text", "text": "multimodal"}]}], "This is the sandbox stand-in."),
        ([], "This is the sandbox stand-in."),
    ],
)
def test_reply_is_deterministic(messages: list[dict[str, Any]], reply: str) -> None:
    body = {"model": "any", "messages": messages, "tools": TOOLS}  # upstream's function_call intent sends tools
    assert reply_text(body) == reply
    assert reply_text(body) == reply_text(dict(body))


def test_a_long_utterance_is_cut() -> None:
    text = reply_text({"messages": [{"role": "user", "content": "word " * 100}]})
    assert len(text) <= len("This is the sandbox stand-in. You said: .") + MAX_ECHO_CHARS


def test_streamed_chunks_spell_the_plain_answer() -> None:
    body = {"messages": [{"role": "user", "content": "what is the weather today"}]}
    text = reply_text(body)
    streamed = chunks(text)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in streamed) == text
    assert streamed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in streamed)
    plain = completion(body, text)
    assert plain["choices"][0]["message"] == {"role": "assistant", "content": text}
    assert "tool_calls" not in plain["choices"][0]["message"]  # the stand-in never calls a tool
