"""The sandbox's LLM STAND-IN: a deterministic OpenAI-compatible chat-completions endpoint on loopback.

The real node's LLM is a cloud model that cannot run here. This stand-in lets the upstream server's `openai` LLM
provider complete a turn: POST /v1/chat/completions, plain or streamed (server-sent events), with or without the
`tools` upstream's function_call intent sends. It never calls a tool and never thinks: it answers one fixed
sentence that repeats the last user message (cut short), so a reply's length and the TTS work it causes are
known. Every answer says it comes from the stand-in. GET /ready and /health answer 200.

Run: python -m xzctl.sandbox.llm_standin PORT
"""

from __future__ import annotations

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "xzctl-llm-stand-in"
MAX_BODY_BYTES = 4 * 1024 * 1024  # a long conversation with upstream's tool list stays well below
MAX_ECHO_CHARS = 60


def reply_text(body: dict[str, Any]) -> str:
    """The stand-in's one deterministic answer to a chat request."""
    heard = ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            heard = content if isinstance(content, str) else ""
            break
    heard = " ".join(heard.split())[:MAX_ECHO_CHARS]
    return f"This is the sandbox stand-in. You said: {heard}." if heard else "This is the sandbox stand-in."


def completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": len(json.dumps(body.get("messages", []))) // 4, "completion_tokens": len(text) // 4},
    }


def chunks(text: str) -> list[dict[str, Any]]:
    """The streamed form: a role delta, the text word by word (as a model streams tokens), a stop."""
    words = text.split(" ")
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": word if i == 0 else " " + word} for i, word in enumerate(words)]
    out: list[dict[str, Any]] = [{"index": 0, "delta": delta, "finish_reason": None} for delta in deltas]
    out.append({"index": 0, "delta": {}, "finish_reason": "stop"})
    created = int(time.time())
    return [
        {
            "id": "chatcmpl-standin",
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": [c],
        }
        for c in out
    ]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request bodies may carry a user's words: not logged

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path in ("/ready", "/health"):
            self._send(200, b"ok\n", "text/plain")
        elif self.path.rstrip("/").endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode())
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, b'{"error": "not found"}')
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY_BYTES:
            self._send(413 if length else 400, b'{"error": "body missing or too large"}')
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send(400, b'{"error": "body is not a JSON object"}')
            return
        text = reply_text(body)
        if not body.get("stream"):
            self._send(200, json.dumps(completion(body, text)).encode())
            return
        events = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks(text)) + "data: [DONE]\n\n"
        self._send(200, events.encode(), "text/event-stream")


def main(argv: list[str]) -> None:
    port = int(argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
