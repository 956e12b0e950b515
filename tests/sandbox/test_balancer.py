"""The real node's L4 balancer: its haproxy configuration (pure), and haproxy itself in front of two stand-in
server processes on loopback: a connection stays on the process it reached, the next goes to the less loaded one,
and a process that stops answering gets no new connections."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from xzctl import service_contract as sc
from xzctl.images.run import stop_service
from xzctl.sandbox.balancer import CHECK_PATHS, haproxy_config, start_balancer
from xzctl.sandbox.processes import free_port

OTA_PATH = sc.XIAOZHI_SERVER.endpoint("http").path
CHECK_DOWN = 30.0  # fall 2 x inter 5 s, on a loaded machine


def _sections(config: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in config.splitlines():
        if line.startswith("  "):
            sections[current].append(line.strip())
        else:
            current = line
            sections[current] = []
    return sections


@pytest.mark.parametrize("processes", [1, 3])
def test_each_endpoint_balances_over_every_process_by_fewest_connections(processes: int) -> None:
    listen = {"ws": 9001, "http": 9002}
    servers = {"ws": [7000 + i for i in range(processes)], "http": [8000 + i for i in range(processes)]}
    sections = _sections(haproxy_config(listen, servers))
    assert "mode tcp" in sections["defaults"]  # L4: haproxy never reads the WebSocket's frames
    for name in ("ws", "http"):
        assert sections[f"frontend {name}"] == [f"bind 127.0.0.1:{listen[name]}", f"default_backend {name}-servers"]
        backend = sections[f"backend {name}-servers"]
        assert "balance leastconn" in backend
        assert f"http-check send meth GET uri {CHECK_PATHS[name]} ver HTTP/1.1 hdr Host 127.0.0.1" in backend
        ports = [line.split()[2] for line in backend if line.startswith("server ")]
        assert ports == [f"127.0.0.1:{p}" for p in servers[name]]
    assert {"ws": sc.XIAOZHI_SERVER.ready_path, "http": OTA_PATH} == CHECK_PATHS


@pytest.mark.parametrize(
    ("listen", "servers"),
    [
        ({"ws": 1}, {"ws": [2], "http": [3]}),  # no HTTP frontend
        ({"ws": 1, "http": 2}, {"ws": [3], "http": []}),  # no server behind one
        ({"ws": 1, "http": 2, "mcp": 3}, {"ws": [4], "http": [5]}),  # not a contract endpoint
    ],
)
def test_a_balancer_without_a_port_or_a_server_is_refused(
    listen: dict[str, int], servers: dict[str, list[int]]
) -> None:
    with pytest.raises(ValueError, match="at least one server each"):
        haproxy_config(listen, servers)


class _Process(ThreadingHTTPServer):
    """A stand-in server process: answers its checks and says which process a request reached."""

    daemon_threads = True
    name = ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one connection, several requests

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def processes() -> Iterator[list[_Process]]:
    started = []
    for i in range(2):
        server = _Process(("127.0.0.1", 0), _Handler)
        server.name = f"process-{i}"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def _reached(connection: http.client.HTTPConnection) -> str:
    connection.request("GET", "/")
    return connection.getresponse().read().decode()


@pytest.mark.images  # haproxy as a process, as the real node runs it
def test_a_connection_stays_on_its_process_and_a_silent_process_gets_no_new_ones(
    tmp_path: Path, processes: list[_Process]
) -> None:
    ports = [p.server_address[1] for p in processes]
    listen = {"ws": free_port(), "http": free_port()}
    balancer = start_balancer(listen, {"ws": ports, "http": ports}, tmp_path)
    try:
        first = http.client.HTTPConnection("127.0.0.1", listen["ws"], timeout=10)
        second = http.client.HTTPConnection("127.0.0.1", listen["ws"], timeout=10)
        held = _reached(first)
        other = _reached(second)
        assert {held, other} == {"process-0", "process-1"}  # the second went to the process holding none
        assert [_reached(first) for _ in range(5)] == [held] * 5  # a connection never moves
        second.close()
        silent = next(p for p in processes if p.name == other)
        silent.shutdown()
        silent.server_close()
        deadline = time.monotonic() + CHECK_DOWN
        reached: list[str] = []
        while time.monotonic() < deadline:
            probe = http.client.HTTPConnection("127.0.0.1", listen["ws"], timeout=10)
            try:
                reached.append(_reached(probe))
            except (OSError, http.client.HTTPException):
                reached.append("refused")
            finally:
                probe.close()
            if reached[-3:] == [held] * 3:
                break
            time.sleep(0.5)
        assert reached[-3:] == [held] * 3, reached  # the check took the silent process out
        assert _reached(first) == held  # and the held connection carried on throughout
        first.close()
    finally:
        stop_service(balancer)
