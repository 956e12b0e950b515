"""Durable rollout state: one JSON file per rollout, written atomically, and per-region locks.

A rollout may be killed at any moment (kill -9, a lost SSH session, a node reboot). Every transition is
written BEFORE it is applied (`pending`: the pins about to be deployed) and confirmed after (`applied`),
so `resume` knows whether the last deploy may be half-done and must be re-applied (deploys are desired
state, so applying twice is harmless). Files are replaced atomically (write a temp file, fsync, rename,
fsync the directory): a reader sees the old state or the new one, never half of each.

Locks: a rollout holds `locks/<region>.lock` for every region it touches, recording its id, pid and the
pid's start time (so a recycled pid is not mistaken for the owner). A lock whose rollout is finished is
stale and removed; a lock whose process died while its rollout is unfinished still refuses a new rollout:
the pins are mid-change, so the operator must `resume` or `abort` that rollout first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xzctl.errors import BadInputError, ConflictError, NotFoundError, UnknownStateError

STATE_ENV = "XZCTL_STATE_DIR"
TERMINAL = ("promoted", "rolled_back", "aborted")
ROLLOUT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")


def default_state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or ".xzctl")


@dataclass
class Step:
    name: str
    region: str
    nodes: list[str]
    status: str = "pending"  # pending | analyzing | passed | skipped
    successes: int = 0


@dataclass
class Measurement:
    step: int
    at: float
    result: str  # success | failure | inconclusive | error
    reason: str
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # track -> name -> value


@dataclass
class RolloutState:
    id: str
    service: str
    image: str
    fleet: str
    settings: dict[str, Any]
    deployer: dict[str, Any]  # how to rebuild the Deployer on resume (kind + parameters)
    prometheus_url: str
    regions: list[str]
    steps: list[Step]
    baseline: dict[str, Any]  # ImagePins JSON before the rollout: what a rollback restores
    applied: dict[str, Any]  # ImagePins JSON confirmed deployed
    pending: dict[str, Any] | None = None  # {"purpose", "pins"}: written before a deploy, cleared after
    phase: str = "progressing"  # progressing | paused | rolling_back | aborting | promoted | rolled_back | aborted
    reason: str = ""
    cause: str = (
        ""  # why it paused or ended: inconclusive | hold | analysis_failed | missing_data | operator | deploy_failed
    )
    step: int = 0
    consecutive_errors: int = 0
    skipped_nodes: dict[str, str] = field(default_factory=dict)
    analysis: list[Measurement] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    created: float = 0.0
    updated: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RolloutState:
        fields = dict(data)
        fields["steps"] = [Step(**s) for s in data["steps"]]
        fields["analysis"] = [Measurement(**m) for m in data["analysis"]]
        return cls(**fields)


def _proc_start(pid: int) -> str | None:
    """The process start time in clock ticks (Linux), which tells a recycled pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z":  # a zombie has exited; only its parent has not reaped it yet
        return None
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, start: str | None = None) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _proc_start(pid)
    if Path("/proc").is_dir() and now is None:
        return False
    return start is None or now is None or now == start


@dataclass(frozen=True)
class LockHolder:
    rollout: str
    pid: int
    host: str
    start: str | None

    def alive(self) -> bool:
        # another host's pid cannot be checked from here: assume it runs (fail closed)
        return self.host != socket.gethostname() or pid_alive(self.pid, self.start)


class StateStore:
    """Rollout state files and region locks under <state dir>/rollouts/."""

    def __init__(self, state_dir: str | Path | None = None) -> None:
        self.root = Path(state_dir) if state_dir is not None else default_state_dir()
        self.dir = self.root / "rollouts"
        self.locks = self.dir / "locks"

    # --- state files -------------------------------------------------------------------------

    def path(self, rollout_id: str) -> Path:
        if not ROLLOUT_ID.match(rollout_id):
            raise BadInputError(f"{rollout_id!r} is not a rollout id", hint="see: xzctl rollout status")
        return self.dir / f"{rollout_id}.json"

    def save(self, state: RolloutState) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.path(state.id), json.dumps(state.to_json(), indent=1, sort_keys=True))

    def load(self, rollout_id: str) -> RolloutState:
        path = self.path(rollout_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return RolloutState.from_json(data)
        except FileNotFoundError:
            raise NotFoundError(f"no rollout {rollout_id!r} in {self.dir}", hint="see: xzctl rollout status") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UnknownStateError(f"{path}: rollout state is unreadable: {exc}") from None

    def all(self) -> list[RolloutState]:
        states = [self.load(p.stem) for p in self.dir.glob("*.json")] if self.dir.is_dir() else []
        return sorted(states, key=lambda s: s.created)

    def latest(self) -> RolloutState:
        states = self.all()
        if not states:
            raise NotFoundError(f"no rollout recorded in {self.dir}", hint="start one: xzctl rollout canary ...")
        unfinished = [s for s in states if not s.terminal]
        return (unfinished or states)[-1]

    def abort_requested(self, rollout_id: str) -> bool:
        return (self.dir / f"{rollout_id}.abort").exists()

    def request_abort(self, rollout_id: str, reason: str) -> None:
        _atomic_write(self.dir / f"{rollout_id}.abort", reason)

    def clear_abort(self, rollout_id: str) -> None:
        (self.dir / f"{rollout_id}.abort").unlink(missing_ok=True)

    # --- locks -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise lock changes between xzctl processes on this machine."""
        self.locks.mkdir(parents=True, exist_ok=True)
        with open(self.locks / ".guard", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def holder(self, region: str) -> LockHolder | None:
        try:
            data = json.loads((self.locks / f"{region}.lock").read_text(encoding="utf-8"))
            return LockHolder(str(data["rollout"]), int(data["pid"]), str(data["host"]), data.get("start"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # an unreadable lock cannot prove it is free: refuse, name the file
            raise ConflictError(
                f"lock {self.locks / f'{region}.lock'} is unreadable", hint="inspect it; remove it if no rollout runs"
            ) from None

    def _write_lock(self, region: str, rollout_id: str) -> None:
        me = os.getpid()
        data = {"rollout": rollout_id, "pid": me, "host": socket.gethostname(), "start": _proc_start(me)}
        _atomic_write(self.locks / f"{region}.lock", json.dumps(data))

    def _finished(self, rollout_id: str) -> bool:
        try:
            return self.load(rollout_id).terminal
        except NotFoundError:
            return True  # its state file is gone: nothing to resume, the lock protects nothing

    def acquire(self, rollout_id: str, regions: list[str]) -> None:
        """Take every region's lock for a new rollout, or none of them (ConflictError)."""
        with self._guard():
            for region in regions:
                held = self.holder(region)
                if held is None or held.rollout == rollout_id:
                    continue
                if self._finished(held.rollout):
                    continue  # stale: its rollout ended but the lock survived a crash
                if held.alive():
                    raise ConflictError(
                        f"rollout {held.rollout} is running on region {region} (pid {held.pid} on {held.host})",
                        hint=f"wait for it or: xzctl rollout abort {held.rollout}",
                    )
                raise ConflictError(
                    f"rollout {held.rollout} on region {region} was interrupted (pid {held.pid} is gone) "
                    "and left the region mid-change",
                    hint=f"xzctl rollout resume {held.rollout} or xzctl rollout abort {held.rollout}",
                )
            for region in regions:
                self._write_lock(region, rollout_id)

    def take_over(self, state: RolloutState) -> None:
        """Become the process driving an existing rollout (resume, promote, abort after a crash)."""
        with self._guard():
            for region in state.regions:
                held = self.holder(region)
                if held is not None and held.rollout != state.id and not self._finished(held.rollout):
                    raise ConflictError(f"region {region} is locked by another rollout, {held.rollout}")
                if held is not None and held.rollout == state.id and held.pid != os.getpid() and held.alive():
                    raise ConflictError(
                        f"rollout {state.id} is being driven by pid {held.pid} on {held.host}",
                        hint=f"stop that process, or: xzctl rollout abort {state.id}",
                    )
            for region in state.regions:
                self._write_lock(region, state.id)

    def driver(self, state: RolloutState) -> LockHolder | None:
        """The live process driving this rollout, if any."""
        for region in state.regions:
            held = self.holder(region)
            if held is not None and held.rollout == state.id and held.alive():
                return held
        return None

    def release(self, state: RolloutState) -> None:
        with self._guard():
            for region in state.regions:
                held = self.holder(region)
                if held is not None and held.rollout == state.id:
                    (self.locks / f"{region}.lock").unlink(missing_ok=True)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a power cut
    finally:
        os.close(dir_fd)
