"""The sandbox's processes: started in their own session (process group), waited for with bounds in time and
count, stopped as a whole group; a pid is identified with its start time, so a recycled pid is never signalled."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from xzctl.errors import ExternalToolError
from xzctl.state import proc_start

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.1


def reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int, start_time: int | None) -> bool:
    reap(pid)
    now = proc_start(pid)
    return now is not None and (start_time is None or now == start_time)


def stop_group(pid: int, start_time: int | None) -> None:
    """SIGTERM the process group, wait (bounded), then SIGKILL what is left."""
    if not alive(pid, start_time):
        return
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, STOP_TIMEOUT_SECONDS)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        for _ in range(polls(wait)):
            if not alive(pid, start_time) or time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
        if not alive(pid, start_time):
            return
    raise ExternalToolError(f"process {pid} did not stop after SIGKILL")


def polls(seconds: float) -> int:
    """A count bound beside the time bound: a slow check cannot stretch a loop past either."""
    return int(seconds / POLL_SECONDS) + 1


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(log: Path, lines: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def wait_until(
    what: str, check: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT_SECONDS
) -> Any:
    """Poll `check()` until it returns a value; fail fast when the process died; bounded in time."""
    deadline = time.monotonic() + timeout
    for _ in range(polls(timeout)):
        if time.monotonic() > deadline:
            break
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            raise ExternalToolError(f"{what} exited with code {proc.returncode}: {tail(log)}")
        time.sleep(POLL_SECONDS)
    raise ExternalToolError(f"{what} not ready after {timeout:.0f} s: {tail(log)}")
