"""The simulator's HTTP server: one /metrics endpoint per edge node, /state, /control, /healthz.

Routes:
  GET  /nodes/<node>/metrics   Prometheus text for one edge node (503 while the node is down or in a metrics gap)
  GET  /healthz                200 "ok"
  GET  /state                  JSON: {"time", "seed", "nodes": {id: {region, devices, up, images, ...}}, ...}
  POST /control                one scenario action as JSON (400 with a message on bad input)
Only 127.0.0.1 is bound: the simulator is a test and demo tool, not a network service.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from xzctl.errors import BadInputError
from xzctl.simulator.exposition import node_families, render_text
from xzctl.simulator.model import FleetModel
from xzctl.spec.models import Fleet

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
MAX_BODY_BYTES = 64 * 1024


class Simulator:
    """A fleet model on the wall clock, safe to call from the server's threads."""

    def __init__(self, fleet: Fleet, *, seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.model = FleetModel(fleet, seed=seed, start=clock())
        self.lock = threading.Lock()

    def scrape(self, node_id: str) -> tuple[int, str]:
        """(HTTP status, body) of one node's metrics endpoint."""
        with self.lock:
            node = self.model.nodes.get(node_id)
            if node is None:
                return HTTPStatus.NOT_FOUND, f"unknown edge node {node_id}\n"
            now = self.clock()
            self.model.process_arrivals(now)
            if not node.up:
                return HTTPStatus.SERVICE_UNAVAILABLE, "edge node down\n"
            self.model.advance_node(node, now)
            if node.gap_until > now:
                return HTTPStatus.SERVICE_UNAVAILABLE, "metrics endpoint failing (metrics gap)\n"
            if node.stale and node.stale_body is not None:
                return HTTPStatus.OK, node.stale_body
            body = render_text(node_families(self.model, node))
            if node.stale:
                node.stale_body = body
            return HTTPStatus.OK, body

    def control(self, action: Any) -> dict[str, Any]:
        with self.lock:
            return self.model.control(action, self.clock())

    def state(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            self.model.process_arrivals(now)
            for node in self.model.nodes.values():
                self.model.advance_node(node, now)
            return self.model.state(now)


def make_handler(sim: Simulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in two writes: with Nagle on, each keep-alive scrape waits 40 ms for an ACK
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: a 1000-target scrape would flood the log."""

        def _send(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            parts = path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "metrics":
                status, body = sim.scrape(parts[1])
                self._send(status, body, TEXT_FORMAT if status == HTTPStatus.OK else "text/plain; charset=utf-8")
            elif path == "/healthz":
                self._send(HTTPStatus.OK, "ok\n")
            elif path == "/state":
                self._send(HTTPStatus.OK, json.dumps(sim.state()), "application/json")
            else:
                self._send(HTTPStatus.NOT_FOUND, "not found\n")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/control":
                self._send(HTTPStatus.NOT_FOUND, "not found\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY_BYTES:
                self._send(HTTPStatus.BAD_REQUEST, json.dumps({"error": "a JSON body up to 64 KiB is required"}))
                return
            try:
                action = json.loads(self.rfile.read(length))
                result = sim.control(action)
            except (ValueError, BadInputError) as exc:
                message = exc.message if isinstance(exc, BadInputError) else f"invalid JSON: {exc}"
                self._send(HTTPStatus.BAD_REQUEST, json.dumps({"error": message}), "application/json")
                return
            self._send(HTTPStatus.OK, json.dumps(result), "application/json")

    return Handler


def serve(sim: Simulator, port: int, *, ready: Callable[[int], None] | None = None) -> None:
    """Serve until interrupted; `ready(port)` is called once the socket listens (port 0 picks one)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(sim))
    server.daemon_threads = True
    try:
        if ready is not None:
            ready(server.server_address[1])
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
