"""Prometheus read bounds under hostile answers: peak RSS with a 200 MB body, wall time with a trickle.

Goals:
  - 4 parallel queries each answered with a 200 MB body: peak RSS of the process < 300 MB (the
    default 32 MiB cap refuses each answer while it streams in);
  - a server trickling one byte a second: a round of 12 queries with --timeout 2 gives up in < 3 x 2 s.
A local server generates the bodies on the fly (nothing is stored); the client runs in this process.
Run: python benchmarks/prom_limits.py [--body-mb 200] [--timeout 2]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from xzctl.errors import UnknownStateError
from xzctl.prom import PrometheusClient

GOAL_RSS_MB = 300
GOAL_ROUND_FACTOR = 3
ELEMENTS_PER_CHUNK = 1000


def _chunk(first: int) -> bytes:
    """~50 KB of vector elements, each its own series (a duplicate series is refused)."""
    return b"".join(
        b'{"metric":{"node":"edge-%d"},"value":[1,"1"]},' % i for i in range(first, first + ELEMENTS_PER_CHUNK)
    )


def _huge(body_bytes: int) -> Callable[[socket.socket], None]:
    def respond(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")  # no length: read until close
        sock.sendall(b'{"status":"success","data":{"resultType":"vector","result":[')
        sent, first = 0, 0
        while sent < body_bytes:
            chunk = _chunk(first)
            sock.sendall(chunk)
            sent, first = sent + len(chunk), first + ELEMENTS_PER_CHUNK
        sock.sendall(b'{"metric":{},"value":[1,"1"]}]}}')

    return respond


def _round(url: str, queries: int, timeout: float, retries: int) -> tuple[str, float]:
    client = PrometheusClient(url, timeout=timeout, retries=retries)
    started = time.monotonic()
    try:
        answers = client.query_many([f"q{i}" for i in range(queries)])
        outcome = f"answered, {sum(len(a) for a in answers)} samples"
    except UnknownStateError as exc:
        outcome = exc.one_line()
    return outcome, time.monotonic() - started


def _trickle(sock: socket.socket) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}":
        sock.sendall(bytes([byte]))
        time.sleep(1.0)


@contextmanager
def _server(respond: Callable[[socket.socket], None]) -> Iterator[str]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(60)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            with contextlib.suppress(OSError):  # the client stopped reading: what the cap is for
                respond(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--body-mb", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--accepted-mb", type=int, default=8)
    args = parser.parse_args()

    with _server(_huge(args.body_mb * 1_000_000)) as url:
        outcome, took = _round(url, 4, 120, 0)
    print(f"4 parallel queries, {args.body_mb} MB body each: {outcome}")
    print(f"  {took:.2f} s; peak RSS {_peak_rss_mb():.0f} MB; goal < {GOAL_RSS_MB} MB")

    with _server(_trickle) as url:
        outcome, took = _round(url, 12, args.timeout, 2)
    bound = GOAL_ROUND_FACTOR * args.timeout
    print(f"12 queries, 1 byte/s server, --timeout {args.timeout:g}: {outcome}")
    print(f"  {took:.2f} s; goal < {bound:g} s ({GOAL_ROUND_FACTOR} x timeout x 1 round)")

    # For the record (no goal): answers under the cap are decoded, at several times their size.
    with _server(_huge(args.accepted_mb * 1_000_000)) as url:
        outcome, took = _round(url, 4, 120, 0)
    print(f"4 parallel queries, {args.accepted_mb} MB body each (under the cap): {outcome}")
    print(f"  {took:.2f} s; peak RSS {_peak_rss_mb():.0f} MB (lower --max-response-size to bound it)")


if __name__ == "__main__":
    main()
