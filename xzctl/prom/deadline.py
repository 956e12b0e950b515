"""One deadline shared by the HTTP requests of a query or a round of queries."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Deadline:
    """One point in time shared by the requests of a query or a round; past it, their sockets are shut."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.seconds = seconds
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._timer = threading.Timer(seconds, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        if self._stopped.is_set():
            return 0.0
        return max(self.at - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.add(sock)
        if self.expired:  # stopped between connect and watch: do not wait for the next read to notice
            self.stop()

    def unwatch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.discard(sock)

    def stop(self) -> None:
        """Expire now and unblock every read in flight (shutdown wakes a blocked recv at once)."""
        self._stopped.set()
        self._timer.cancel()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            with contextlib.suppress(OSError):  # already closed
                sock.shutdown(socket.SHUT_RDWR)
