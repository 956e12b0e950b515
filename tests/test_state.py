"""The shared local-state helpers: atomic files, process liveness with start times, lock holders, claims."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xzctl.errors import BadInputError, ConflictError
from xzctl.state import Claims, Holder, atomic_write, pid_alive, proc_start, state_dir


def test_state_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XZCTL_STATE_DIR", raising=False)
    assert state_dir() == Path(".xzctl")
    monkeypatch.setenv("XZCTL_STATE_DIR", str(tmp_path))
    assert state_dir() == tmp_path
    assert state_dir(tmp_path / "x") == tmp_path / "x"  # the flag wins


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "state.json"
    atomic_write(target, "one")
    atomic_write(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_reused_pid_or_a_zombie_is_not_alive() -> None:
    me = proc_start(os.getpid())
    assert me is not None and pid_alive(os.getpid(), me)
    assert not pid_alive(os.getpid(), me + 1)  # same pid, another start time: a recycled pid
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(proc.pid)  # exited but not yet reaped: a zombie
    proc.wait(timeout=30)
    assert not pid_alive(0) and not pid_alive(-1)


def test_holder_round_trip(tmp_path: Path) -> None:
    me = Holder.me("asr-abcde")
    path = tmp_path / "x.lock"
    assert Holder.read(path) is None
    path.write_text(me.to_json())
    assert Holder.read(path) == me and me.alive()
    gone = Holder("asr-abcde", me.pid, me.host, (me.start or 0) + 1)
    assert not gone.alive()
    assert Holder("x", 1, "another-host", None).alive()  # another host's pid: assume it runs (fail closed)


def test_claims(tmp_path: Path) -> None:
    claims = Claims(tmp_path, "sandbox")
    assert claims.all() == {}
    claims.add("asr-abcde", "rollout asr-abcde is unfinished")
    assert claims.all() == {"asr-abcde": "rollout asr-abcde is unfinished"}
    with pytest.raises(ConflictError, match="1 unfinished operation") as info:
        claims.refuse_unless(False, "the sandbox")
    assert info.value.exit_code == 5 and "asr-abcde" in (info.value.hint or "")
    claims.refuse_unless(True, "the sandbox")  # --force
    claims.drop("asr-abcde")
    claims.drop("asr-abcde")  # idempotent
    claims.refuse_unless(False, "the sandbox")
    assert claims.all() == {}
    with pytest.raises(BadInputError):
        claims.add("../escape", "x")
