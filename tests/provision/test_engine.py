"""An Automation API run leaves no process behind, however it ends; what a killed run left, the next one stops.

The engine here is a small Python that behaves as the leaked plugin did (a process group of its own, SIGTERM
ignored), started with the run's environment as the Automation API starts the pulumi CLI.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xzctl import reaper
from xzctl.provision import engine
from xzctl.provision.engine import ENGINE_MARK, engine_run

PLUGIN = (
    "import os, signal, sys, time; os.setpgid(0, 0); signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(120)"
)


def start_plugin(env: dict[str, str], ready: Path) -> int:
    subprocess.Popen([sys.executable, "-c", PLUGIN, str(ready)], env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    for _ in range(600):
        if ready.is_file() and ready.read_text():
            return int(ready.read_text())
        assert time.monotonic() < deadline, "the plugin did not start"
        time.sleep(0.05)
    raise AssertionError("the plugin did not start")


@pytest.fixture(autouse=True)
def _short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "FINISH_SECONDS", 0.2)
    monkeypatch.setattr(engine, "LEFTOVER_TERM_SECONDS", 0.3)
    monkeypatch.setattr(reaper, "TERM_SECONDS", 0.3)


@pytest.mark.parametrize("ending", [None, RuntimeError("pulumi failed"), KeyboardInterrupt()])
def test_no_process_of_a_run_survives_it(ending: BaseException | None, tmp_path: Path) -> None:
    """Success, a failure, Ctrl-C (a timeout raises in the run as Ctrl-C does)."""
    expected = pytest.raises(type(ending)) if ending is not None else contextlib.nullcontext()
    with expected, engine_run() as env:
        pid = start_plugin(env, tmp_path / "ready")
        assert reaper.find(pid) is not None
        if ending is not None:
            raise ending
    assert reaper.find(pid) is None
    assert reaper.marked(ENGINE_MARK, env[ENGINE_MARK]) == []


def test_the_next_run_stops_what_a_killed_run_left(tmp_path: Path) -> None:
    dead_owner = "1.1.0000"  # PID 1 did not start at tick 1: that owner is gone
    pid = start_plugin({ENGINE_MARK: dead_owner}, tmp_path / "ready")
    left = reaper.find(pid)
    assert left is not None
    with engine_run() as env:
        assert reaper.find(pid) is None  # stopped before this run's engine starts
        assert env[ENGINE_MARK] != dead_owner


def test_a_live_owners_engine_is_left_alone(tmp_path: Path) -> None:
    other_run = reaper.owner_mark()  # this process: alive, as another run in flight is
    pid = start_plugin({ENGINE_MARK: other_run}, tmp_path / "ready")
    try:
        assert pid not in [p.pid for p in engine.stop_orphaned_engines()]
        assert reaper.find(pid) is not None
    finally:
        reaper.stop([p for p, _ in reaper.marked(ENGINE_MARK, other_run)], term=0.1)
