"""The durable rollout state: atomic files, region locks, stale and live lock holders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xzctl.errors import ConflictError, NotFoundError, UnknownStateError
from xzctl.manifests.pins import spec_pins
from xzctl.rollout.state import Measurement, RolloutState, StateStore, Step, pid_alive
from xzctl.spec import Fleet


def make_state(fleet: Fleet, rollout_id: str = "asr-test-0001", regions: list[str] | None = None) -> RolloutState:
    pins = spec_pins(fleet).to_json()
    return RolloutState(
        id=rollout_id,
        service="asr",
        image="registry.xiaozhi.example/inference/asr:1.2.0",
        fleet="fleet.yaml",
        settings={"interval_seconds": 1.0, "checks": 1, "on_unreachable": "skip", "error_limit": 4},
        deployer={"kind": "sandbox", "simulator_url": "http://127.0.0.1:9"},
        prometheus_url="http://127.0.0.1:9",
        regions=regions or ["beijing", "shanghai"],
        steps=[Step("canary node bj-edge-01", "beijing", ["bj-edge-01"])],
        baseline=pins,
        applied=pins,
    )


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    return proc.pid


def write_lock(store: StateStore, region: str, rollout_id: str, pid: int) -> None:
    store.locks.mkdir(parents=True, exist_ok=True)
    (store.locks / f"{region}.lock").write_text(json.dumps({"rollout": rollout_id, "pid": pid, "host": os.uname()[1]}))


def test_state_round_trips_and_leaves_no_temp_files(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    state = make_state(example_fleet)
    state.analysis.append(Measurement(0, 1.0, "success", "ok", {"p95_seconds": {"canary": 0.2, "stable": 0.2}}))
    state.pending = {"purpose": "step", "step": 0, "pins": state.baseline}
    store.save(state)
    loaded = store.load(state.id)
    assert loaded == state
    assert [p.name for p in store.dir.iterdir() if p.is_file()] == [f"{state.id}.json"]


def test_unreadable_state_is_unknown_not_a_crash(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.dir.mkdir(parents=True)
    (store.dir / "asr-x.json").write_text("{ half a file")
    with pytest.raises(UnknownStateError, match="rollout state is unreadable"):
        store.load("asr-x")
    with pytest.raises(NotFoundError):
        store.load("asr-none")


def test_second_rollout_on_a_region_is_refused_while_the_first_runs(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    first = make_state(example_fleet, "asr-first", ["beijing"])
    store.save(first)
    store.acquire(first.id, first.regions)  # held by this (live) process
    second = make_state(example_fleet, "tts-second", ["guangzhou", "beijing"])
    with pytest.raises(ConflictError, match="rollout asr-first is running on region beijing") as info:
        store.acquire(second.id, second.regions)
    assert info.value.exit_code == 5
    assert not (store.locks / "guangzhou.lock").exists()  # all or nothing
    store.release(first)
    store.acquire(second.id, second.regions)
    assert store.holder("beijing") is not None and store.holder("beijing").rollout == "tts-second"  # type: ignore[union-attr]


def test_lock_of_a_dead_pid_with_an_unfinished_rollout_asks_to_resume_or_abort(
    tmp_path: Path, example_fleet: Fleet
) -> None:
    store = StateStore(tmp_path)
    crashed = make_state(example_fleet, "asr-crashed", ["beijing"])
    store.save(crashed)
    write_lock(store, "beijing", crashed.id, dead_pid())
    with pytest.raises(ConflictError, match="was interrupted") as info:
        store.acquire("asr-new", ["beijing"])
    assert info.value.hint is not None and "resume asr-crashed" in info.value.hint
    assert store.driver(crashed) is None
    store.take_over(crashed)  # resume may take it over: the old driver is gone
    holder = store.holder("beijing")
    assert holder is not None and holder.pid == os.getpid()


def test_stale_lock_of_a_finished_rollout_is_replaced(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    done = make_state(example_fleet, "asr-done", ["beijing"])
    done.phase = "promoted"
    store.save(done)
    write_lock(store, "beijing", done.id, dead_pid())
    store.acquire("asr-next", ["beijing"])
    holder = store.holder("beijing")
    assert holder is not None and holder.rollout == "asr-next"


def test_take_over_refuses_while_another_process_drives_the_rollout(tmp_path: Path, example_fleet: Fleet) -> None:
    store = StateStore(tmp_path)
    state = make_state(example_fleet, "asr-live", ["beijing"])
    store.save(state)
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        try:
            write_lock(store, "beijing", state.id, other.pid)
            with pytest.raises(ConflictError, match=f"being driven by pid {other.pid}"):
                store.take_over(state)
        finally:
            other.kill()
            other.wait(timeout=30)
    store.take_over(state)


def test_unreadable_lock_fails_closed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.locks.mkdir(parents=True)
    (store.locks / "beijing.lock").write_text("garbage")
    with pytest.raises(ConflictError, match="unreadable"):
        store.acquire("asr-x", ["beijing"])


def test_a_zombie_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(proc.pid)  # exited but not yet reaped: a zombie
    proc.wait(timeout=30)
    assert pid_alive(os.getpid())
