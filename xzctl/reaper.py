"""No process outlives its owner: find what an operation started and stop it, bounded in time, then SIGKILL.

Two ways to find them, both surviving re-parenting to PID 1:
- a session: the sandbox starts each server with `start_new_session`, and every descendant keeps that session id,
  also one that moved to a process group of its own;
- an environment mark (`NAME=VALUE`, inherited by every descendant): the Pulumi engine starts its provider
  plugins in process groups of their own, and a plugin does not exit on SIGTERM, so `xzctl provision` marks the
  engine it starts and stops whatever carries the mark when the run ends, however it ends.

A process is named by its pid and its start time (a recycled pid is never signalled); it is gone when /proc no
longer has it or every thread of it has exited (a zombie awaiting its parent is gone).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from xzctl.errors import ExternalToolError
from xzctl.state import pid_alive

TERM_SECONDS = 10.0  # a server's graceful stop
KILL_SECONDS = 10.0  # the kernel freeing a killed process (a large Go heap takes a moment)
COLLECT_SECONDS = 10.0  # an orphan's zombie until PID 1 collects it
POLL_SECONDS = 0.05
_COMMAND_CHARS = 160
_ENVIRON_BYTES = 1 << 20  # bounded read: an environment is a few KB


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int  # clock ticks since boot (field 22 of /proc/PID/stat)
    session: int
    command: str

    def describe(self) -> str:
        return f"pid {self.pid} {self.command}"

    def alive(self) -> bool:
        _reap(self.pid)
        stat = _stat(self.pid)
        if stat is None or int(stat[19]) != self.start:
            return False
        if stat[0] not in ("Z", "X"):
            return True
        # A zombie thread-group leader whose other threads still run (a Go process shutting down) is not gone.
        try:
            tasks = [t.name for t in Path(f"/proc/{self.pid}/task").iterdir()]
        except OSError:
            return False
        return any((s := _stat(self.pid, int(t))) is not None and s[0] not in ("Z", "X") for t in tasks)

    def listed(self) -> bool:
        """Still in /proc, even as a zombie whose parent has not collected it yet."""
        _reap(self.pid)
        stat = _stat(self.pid)
        return stat is not None and int(stat[19]) == self.start

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _stat(pid: int, task: int | None = None) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ... starttime (19)."""
    path = f"/proc/{pid}/task/{task}/stat" if task is not None else f"/proc/{pid}/stat"
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields if len(fields) > 19 else None


def _command(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()[:4096]
    except OSError:
        return "?"
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)[:_COMMAND_CHARS] or "?"


def _procs() -> Iterator[tuple[int, list[str]]]:
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me:
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] not in ("Z", "X"):
                yield int(entry.name), stat


def _proc(pid: int, stat: list[str]) -> Proc:
    return Proc(pid=pid, start=int(stat[19]), session=int(stat[3]), command=_command(pid))


def find(pid: int, start: int | None = None) -> Proc | None:
    """The running process `pid` (and the one that started at `start`, when given)."""
    stat = _stat(pid)
    if stat is None or (start is not None and int(stat[19]) != start):
        return None
    proc = _proc(pid, stat)
    return proc if proc.alive() else None


def session(leader: int, start: int | None) -> list[Proc]:
    """Every running process of the session `leader` started (`start`: the leader's start time), the leader first.

    Members outlive a leader that died: they are found by the session id, and a member never started before its
    leader did; when the pid now belongs to another process, the session is not ours and nothing is returned."""
    head = _stat(leader)
    if head is not None and start is not None and int(head[19]) != start:
        return []
    since = start if start is not None else int(head[19]) if head is not None else 0
    found = [_proc(pid, stat) for pid, stat in _procs() if int(stat[3]) == leader and int(stat[19]) >= since]
    return sorted(found, key=lambda p: p.pid != leader)


def marked(name: str, value: str | None = None) -> list[tuple[Proc, str]]:
    """Running processes whose environment has `name` (=`value` when given), with the value each carries."""
    key = name.encode() + b"="
    out = []
    for pid, stat in _procs():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read(_ENVIRON_BYTES)
        except OSError:
            continue  # another user's process, or gone meanwhile
        for entry in environ.split(b"\0"):
            if entry.startswith(key) and (value is None or entry == key + value.encode()):
                out.append((_proc(pid, stat), entry[len(key) :].decode(errors="replace")))
                break
    return out


def owner_mark() -> str:
    """A mark value naming this process as the owner (`pid.start.nonce`): `owner_gone` can tell when it died."""
    pid = os.getpid()
    stat = _stat(pid)
    return f"{pid}.{stat[19] if stat else 0}.{os.urandom(4).hex()}"


def owner_gone(value: str) -> bool:
    pid, _, rest = value.partition(".")
    start = rest.partition(".")[0]
    if not (pid.isdigit() and start.isdigit()):
        return False  # not one of our marks: leave it alone
    return not pid_alive(int(pid), int(start))


def _wait_gone(procs: list[Proc], seconds: float) -> list[Proc]:
    """Those of `procs` still alive after up to `seconds` (bounded in time and in count)."""
    left = [p for p in procs if p.alive()]
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / POLL_SECONDS) + 1):
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
        left = [p for p in left if p.alive()]
    return left


def wait_collected(procs: list[Proc]) -> None:
    """Wait (bounded) until their parents collected the exited processes: whoever looks right after (`ps`,
    `pgrep`) then finds nothing. Where PID 1 reaps orphans only now and then (a container's init), that takes
    seconds; past the bound a zombie is left to its parent: it holds no port and no memory."""
    deadline = time.monotonic() + COLLECT_SECONDS
    for _ in range(int(COLLECT_SECONDS / POLL_SECONDS) + 1):
        if not any(p.listed() for p in procs) or time.monotonic() >= deadline:
            return
        time.sleep(POLL_SECONDS)


def stop(
    procs: Iterable[Proc],
    *,
    grace: float = 0.0,
    term: float | None = None,
    kill: float | None = None,
    collect: bool = True,
) -> list[Proc]:
    """Let `procs` exit on their own for `grace` seconds, then SIGTERM, wait `term`, then SIGKILL, wait `kill`.

    Returns only when each is gone (`collect`: and collected by its parent, see `wait_collected`); returns those
    that had to be signalled. A Ctrl-C during the grace wait
    skips to the signals (and is raised again once they are gone). ExternalToolError names any survivor."""
    term = TERM_SECONDS if term is None else term
    kill = KILL_SECONDS if kill is None else kill
    left = list(procs)
    interrupted = False
    try:
        left = _wait_gone(left, grace)
    except KeyboardInterrupt:
        interrupted = True
    signalled = [p for p in left if p.alive()]
    left = signalled
    for sig, wait in ((signal.SIGTERM, term), (signal.SIGKILL, kill)):
        if not left:
            break
        for proc in left:
            proc.signal(sig)
        left = _wait_gone(left, wait)
    if left:
        raise ExternalToolError(f"still running after SIGKILL: {'; '.join(p.describe() for p in left)}")
    if collect:
        wait_collected(signalled)
    if interrupted:
        raise KeyboardInterrupt
    return signalled
