"""The sandbox's processes: started in their own session, waited for with bounds in time and count, stopped as a
whole session (xzctl.reaper); a pid is identified with its start time, so a recycled pid is never signalled."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

from xzctl import reaper
from xzctl.errors import ExternalToolError

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.1


def alive(pid: int, start_time: int | None) -> bool:
    return reaper.find(pid, start_time) is not None


def stop_group(pid: int, start_time: int | None, *, collect: bool = True) -> list[reaper.Proc]:
    """SIGTERM every process of the session `pid` leads (bounded wait), then SIGKILL; returns when all are gone
    (`collect`: and their parents collected them), with those it stopped."""
    return reaper.stop(
        reaper.session(pid, start_time), term=STOP_TIMEOUT_SECONDS, kill=STOP_TIMEOUT_SECONDS, collect=collect
    )


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


def http_ok(url: str, timeout: float) -> bool:
    """Whether a GET of `url` answers 200 within `timeout`: a started process's readiness."""
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


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
