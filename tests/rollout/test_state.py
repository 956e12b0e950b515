"""The durable rollout state: typed atomic files with a schema version, node locks, stale and live holders."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.rollout_fakes import make_state
from xzctl.errors import ConflictError, NotFoundError, UnknownStateError
from xzctl.rollout.state import (
    Measurement,
    Pending,
    Phase,
    Purpose,
    Result,
    StateStore,
)
from xzctl.spec import Fleet


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def write_lock(store: StateStore, node: str, rollout_id: str, pid: int) -> None:
    store.locks.mkdir(parents=True, exist_ok=True)
    holder = {"owner": rollout_id, "pid": pid, "host": socket.gethostname(), "start": None}
    (store.locks / f"{node}.lock").write_text(json.dumps(holder))


def test_state_round_trips_typed_and_leaves_no_temp_files(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    state = make_state(example_fleet)
    state.analysis.append(
        Measurement(step=0, at=1.0, result=Result.SUCCESS, reason="ok", metrics={"p95_seconds": {"canary": 0.2}})
    )
    state.pending = Pending(purpose=Purpose.STEP, step=0, pins=state.baseline)
    store.save(state)
    loaded = store.load(state.id)
    assert loaded == state
    assert loaded.pending is not None and loaded.pending.purpose is Purpose.STEP
    assert loaded.phase is Phase.PROGRESSING
    assert [p.name for p in store.dir.iterdir() if p.is_file()] == [f"{state.id}.json"]
    assert json.loads((store.dir / f"{state.id}.json").read_text())["schema_version"] == 2


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{ half a file", "rollout state is unreadable"),
        ('{"id": "asr-x"}', "schema version 1 is not the 2"),
        ('{"schema_version": 9, "id": "asr-x"}', "schema version 9 is not the 2"),
        ('{"schema_version": 2, "id": "asr-x"}', "rollout state is unreadable"),
    ],
)
def test_unreadable_or_unknown_state_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    store = StateStore(tmp_path)
    store.dir.mkdir(parents=True)
    (store.dir / "asr-x.json").write_text(text)
    with pytest.raises(UnknownStateError, match=needle) as info:
        store.load("asr-x")
    assert info.value.exit_code == 3
    with pytest.raises(NotFoundError):
        store.load("asr-none")


def test_ids_are_short_and_unique(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    ids = set()
    for _ in range(30):
        new = store.new_id("xiaozhi_server")
        store.save(make_state(example_fleet, new))
        ids.add(new)
    assert len(ids) == 30
    assert all(i.startswith("xiaozhi-server-") and len(i) == len("xiaozhi-server-") + 5 for i in ids)


def test_rollouts_on_disjoint_nodes_proceed_overlapping_ones_are_refused(tmp_path: Path, example_fleet: Fleet) -> None:
    """Bug 8: every rollout used to lock every region, whatever nodes it changed."""
    store = StateStore(tmp_path)
    first = make_state(example_fleet, "asr-f1rst", ["bj-edge-01"])
    store.save(first)
    store.acquire(first.id, first.nodes)  # held by this (live) process
    store.acquire("tts-d1sj1", ["bj-edge-02", "sh-edge-01"])  # disjoint: proceeds
    with pytest.raises(ConflictError, match="rollout asr-f1rst is running on edge node bj-edge-01") as info:
        store.acquire("vad-s3c0n", ["gz-edge-01", "bj-edge-01"])
    assert info.value.exit_code == 5
    assert store.holder("gz-edge-01") is None  # all or nothing
    store.release(first)
    store.acquire("vad-s3c0n", ["gz-edge-01", "bj-edge-01"])
    holder = store.holder("bj-edge-01")
    assert holder is not None and holder.owner == "vad-s3c0n"


def test_lock_of_a_dead_pid_with_an_unfinished_rollout_asks_to_resume_or_abort(
    tmp_path: Path, example_fleet: Fleet
) -> None:
    store = StateStore(tmp_path)
    crashed = make_state(example_fleet, "asr-cr4sh")
    store.save(crashed)
    write_lock(store, "bj-edge-01", crashed.id, dead_pid())
    with pytest.raises(ConflictError, match="was interrupted") as info:
        store.acquire("asr-n3ww1", ["bj-edge-01"])
    assert info.value.hint is not None and "resume asr-cr4sh" in info.value.hint
    assert store.driver(crashed) is None
    store.take_over(crashed)  # resume may take it over: the old driver is gone
    holder = store.holder("bj-edge-01")
    assert holder is not None and holder.pid == os.getpid()


def test_stale_lock_of_a_finished_rollout_is_replaced(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    done = make_state(example_fleet, "asr-d0ne1")
    done.phase = Phase.PROMOTED
    store.save(done)
    write_lock(store, "bj-edge-01", done.id, dead_pid())
    store.acquire("asr-n3xt1", ["bj-edge-01"])
    holder = store.holder("bj-edge-01")
    assert holder is not None and holder.owner == "asr-n3xt1"


def test_take_over_refuses_while_another_process_drives_the_rollout(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    state = make_state(example_fleet, "asr-l1ve1")
    store.save(state)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            write_lock(store, "bj-edge-01", state.id, other.pid)
            with pytest.raises(ConflictError, match=f"being driven by pid {other.pid}"):
                store.take_over(state)
        finally:
            other.kill()
            other.wait(timeout=30)
    store.take_over(state)


def test_unreadable_lock_fails_closed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.locks.mkdir(parents=True)
    (store.locks / "bj-edge-01.lock").write_text("garbage")
    with pytest.raises(ConflictError, match="unreadable"):
        store.acquire("asr-x", ["bj-edge-01"])


def test_a_file_of_another_version_does_not_hide_the_other_rollouts(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    store.save(make_state(example_fleet, "asr-g00d1"))
    (store.dir / "asr-20261124t220000z-0001.json").write_text('{"id": "asr-20261124t220000z-0001"}')  # schema 1
    assert [s.id for s in store.all()] == ["asr-g00d1"]
    [(path, why)] = store.unreadable().items()
    assert path.endswith("asr-20261124t220000z-0001.json") and "schema version 1 is not the 2" in why
    assert store.latest().id == "asr-g00d1"
