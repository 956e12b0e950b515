"""No process outlives its owner: sessions and environment marks found through /proc, stops bounded then SIGKILL.

The processes here are small Pythons that behave like the ones that leaked: one that moves to a process group of
its own and ignores SIGTERM (as the engine's kubernetes plugin does), one that exits when asked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from xzctl import reaper

# Like pulumi-resource-kubernetes: a process group of its own, SIGTERM ignored; says so in `ready`, then waits.
STUBBORN = (
    "import os, signal, sys, time; os.setpgid(0, 0); signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
)
# A leader that starts the stubborn one and exits at once, leaving it to PID 1, as a killed engine does.
LEADER = (
    "import subprocess, sys; subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], "
    "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
)


def wait_for_pid(ready: Path) -> int:
    deadline = time.monotonic() + 30
    for _ in range(600):
        if ready.is_file() and ready.read_text():
            return int(ready.read_text())
        assert time.monotonic() < deadline, "the process did not start"
        time.sleep(0.05)
    raise AssertionError("the process did not start")


@pytest.fixture
def orphan(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """(the session leader, gone; its stubborn child, re-parented and in a group of its own)."""
    ready = tmp_path / "ready"
    leader = subprocess.Popen([sys.executable, "-c", LEADER, STUBBORN, str(ready)], start_new_session=True)
    leader.wait(timeout=30)
    pid = wait_for_pid(ready)
    yield leader, pid
    proc = reaper.find(pid)
    if proc is not None:  # the test failed before stopping it
        reaper.stop([proc], term=0.1)


def test_a_session_is_found_after_its_leader_died_and_stopped_past_sigterm(
    orphan: tuple[subprocess.Popen[bytes], int],
) -> None:
    leader, pid = orphan
    proc = reaper.find(pid)
    assert proc is not None and proc.session == leader.pid
    found = reaper.session(leader.pid, None)
    assert [p.pid for p in found] == [pid]
    started = time.monotonic()
    assert reaper.stop(found, term=0.5, kill=10) == found
    assert reaper.find(pid) is None and not proc.alive()
    assert time.monotonic() - started < 10  # SIGTERM ignored: SIGKILL after the bound, not a hang


def test_a_recycled_pid_is_not_ours(orphan: tuple[subprocess.Popen[bytes], int]) -> None:
    _, pid = orphan
    proc = reaper.find(pid)
    assert proc is not None
    other = reaper.Proc(pid=pid, start=proc.start + 1, session=proc.session, command=proc.command)
    assert not other.alive()
    assert reaper.session(pid, proc.start + 1) == []  # the pid leads no session of ours
    assert reaper.stop([other], term=0.1) == []
    assert reaper.find(pid) is not None  # never signalled


def test_a_mark_in_the_environment_finds_every_descendant(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    mark = reaper.owner_mark()
    env = {**os.environ, "XZCTL_TEST_MARK": mark}
    subprocess.Popen([sys.executable, "-c", LEADER, STUBBORN, str(ready)], env=env).wait(timeout=30)
    pid = wait_for_pid(ready)
    found = reaper.marked("XZCTL_TEST_MARK", mark)
    assert [(p.pid, value) for p, value in found] == [(pid, mark)]
    assert reaper.marked("XZCTL_TEST_MARK", mark + "x") == []
    assert reaper.stop([p for p, _ in found], term=0.2) == [p for p, _ in found]
    assert reaper.marked("XZCTL_TEST_MARK", mark) == []


def test_a_process_that_exits_within_the_grace_is_not_signalled() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    found = reaper.find(proc.pid)
    assert found is not None
    assert reaper.stop([found], grace=30, term=0.1) == []  # it ended on its own: nothing was signalled
    assert reaper.find(proc.pid) is None


@pytest.mark.parametrize(
    ("value", "gone"),
    [
        ("1.1.abcd", True),  # PID 1 did not start at tick 1
        ("not-a-mark", False),  # not ours: left alone
        ("", False),
    ],
)
def test_owner_gone(value: str, gone: bool) -> None:
    assert reaper.owner_gone(value) is gone


def test_my_own_mark_is_alive() -> None:
    assert not reaper.owner_gone(reaper.owner_mark())
