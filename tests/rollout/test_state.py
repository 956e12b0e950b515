"""The durable rollout state: typed atomic files with a schema version, node locks, stale and live holders."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.rollout_fakes import make_state
from xzctl.errors import ConflictError, NotFoundError, UnknownStateError
from xzctl.rollout.locks import NodeLockedError
from xzctl.rollout.state import (
    Measurement,
    Pending,
    Phase,
    Purpose,
    Result,
    RolloutState,
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


def _saved(store: StateStore, fleet: Fleet, rollout_id: str, nodes: list[str], phase: Phase = Phase.PROGRESSING
           ) -> RolloutState:  # fmt: skip
    state = make_state(fleet, rollout_id, nodes)
    state.phase = phase
    store.save(state)
    return state


def test_rollouts_on_disjoint_nodes_proceed_overlapping_ones_are_refused(tmp_path: Path, example_fleet: Fleet) -> None:
    """Bug 8: every rollout used to lock every region, whatever nodes it changed."""
    store = StateStore(tmp_path)
    first = _saved(store, example_fleet, "asr-f1rst", ["bj-edge-01"])
    store.hold(first, first.nodes)  # held by this (live) process
    store.hold(_saved(store, example_fleet, "tts-d1sj1", ["bj-edge-02", "sh-edge-01"]), ["bj-edge-02", "sh-edge-01"])
    third = _saved(store, example_fleet, "vad-s3c0n", ["gz-edge-01", "bj-edge-01"])
    with pytest.raises(NodeLockedError, match="rollout asr-f1rst is running on edge node bj-edge-01") as info:
        store.hold(third, third.nodes)
    assert info.value.exit_code == 5 and info.value.running
    assert store.holder("gz-edge-01") is None  # all or nothing
    store.release(first)
    store.hold(third, third.nodes)
    holder = store.holder("bj-edge-01")
    assert holder is not None and holder.owner == "vad-s3c0n"


def test_a_rollout_holds_only_what_it_is_given_and_lets_go_of_the_rest(tmp_path: Path, example_fleet: Fleet) -> None:
    """Issue 25 item 5: the locks follow the rollout's step instead of covering every planned node."""
    store = StateStore(tmp_path)
    state = _saved(store, example_fleet, "asr-m0ve1", ["bj-edge-01", "bj-edge-02", "sh-edge-01"])
    for nodes in (["bj-edge-01"], ["bj-edge-02", "sh-edge-01"], [], ["bj-edge-01", "sh-edge-01"]):
        store.hold(state, nodes)
        assert store.held(state) == nodes
        assert sorted(p.stem for p in store.locks.glob("*.lock")) == sorted(nodes)
    store.release(state)
    assert store.held(state) == [] and store.driver(state) is None


@pytest.mark.parametrize(
    "case",
    [
        (Phase.PROGRESSING, False, "was interrupted (pid", "xzctl rollout resume asr-h0ld1 or xzctl rollout abort"),
        (Phase.PAUSED, False, "is held by rollout asr-h0ld1, paused there", "xzctl rollout resume asr-h0ld1 or"),
        (Phase.ROLLING_BACK, False, "was interrupted (pid", "xzctl rollout resume asr-h0ld1 or"),
        (Phase.PROGRESSING, True, "rollout asr-h0ld1 is running on edge node", "xzctl rollout status asr-h0ld1"),
        (Phase.PROMOTED, False, None, None),  # its rollout ended: a stale lock is taken over
        (Phase.ABORTED, True, None, None),
    ],
)
def test_a_node_held_by_another_rollout_says_the_next_command(
    tmp_path: Path, example_fleet: Fleet, case: tuple[Phase, bool, str | None, str | None]
) -> None:
    """(the holder's phase, its process alive, what the refusal says, the command it names)"""
    phase, alive, needle, hint = case
    store = StateStore(tmp_path)
    other = _saved(store, example_fleet, "asr-h0ld1", ["bj-edge-01"], phase)
    write_lock(store, "bj-edge-01", other.id, os.getpid() if alive else dead_pid())
    mine = _saved(store, example_fleet, "tts-n3xt1", ["bj-edge-01"])
    if needle is None:
        store.hold(mine, mine.nodes)
        holder = store.holder("bj-edge-01")
        assert holder is not None and holder.owner == mine.id
        return
    with pytest.raises(NodeLockedError, match=re.escape(needle)) as info:
        store.hold(mine, mine.nodes)
    assert info.value.hint is not None and hint is not None and hint in info.value.hint
    assert (info.value.owner, info.value.node, info.value.running) == (other.id, "bj-edge-01", alive)


def test_a_crashed_rollout_is_taken_over_with_the_nodes_it_held(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    crashed = _saved(store, example_fleet, "asr-cr4sh", ["bj-edge-01", "bj-edge-02"])
    write_lock(store, "bj-edge-01", crashed.id, dead_pid())
    store.dir.joinpath(f"{crashed.id}.driver").write_text((store.locks / "bj-edge-01.lock").read_text())
    assert store.driver(crashed) is None
    store.take_over(crashed)  # resume may take it over: the old driver is gone
    driver, holder = store.driver(crashed), store.holder("bj-edge-01")
    assert driver is not None and driver.pid == os.getpid()
    assert holder is not None and holder.pid == os.getpid() and store.held(crashed) == ["bj-edge-01"]


def test_take_over_refuses_while_another_process_drives_the_rollout(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    state = _saved(store, example_fleet, "asr-l1ve1", ["bj-edge-01"])
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            holder = {"owner": state.id, "pid": other.pid, "host": socket.gethostname(), "start": None}
            store.dir.joinpath(f"{state.id}.driver").write_text(json.dumps(holder))
            with pytest.raises(ConflictError, match=f"being driven by pid {other.pid}"):
                store.take_over(state)
        finally:
            other.kill()
            other.wait(timeout=30)
    store.take_over(state)


def test_unreadable_lock_fails_closed(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    store.locks.mkdir(parents=True)
    (store.locks / "bj-edge-01.lock").write_text("garbage")
    with pytest.raises(ConflictError, match="unreadable"):
        store.hold(make_state(example_fleet, "asr-x"), ["bj-edge-01"])


def test_a_file_of_another_version_does_not_hide_the_other_rollouts(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    store.save(make_state(example_fleet, "asr-g00d1"))
    (store.dir / "asr-20261124t220000z-0001.json").write_text('{"id": "asr-20261124t220000z-0001"}')  # schema 1
    assert [s.id for s in store.all()] == ["asr-g00d1"]
    [(path, why)] = store.unreadable().items()
    assert path.endswith("asr-20261124t220000z-0001.json") and "schema version 1 is not the 2" in why
    assert store.latest().id == "asr-g00d1"
