"""Local state shared by every operation: the state dir, atomic files, process liveness, locks, claims.

One place for what sandbox, rollout, provision and bootstrap each need from the local disk:
- `state_dir()`: `--state-dir`, else `$XZCTL_STATE_DIR`, else `./.xzctl`.
- `atomic_write()`: temp file, fsync, rename, fsync the directory; a reader sees the old file or the new
  one, never half of each, even after a power cut.
- `proc_start()` / `pid_alive()`: a pid plus its /proc start time, so a recycled pid is not taken as alive.
- `Holder` + `guard()`: lock files that say who holds them (owner, pid, host, start time), changed under
  an fcntl lock so two processes never both think they took the same lock.
- `Claims`: "this unfinished operation depends on that resource" (a rollout on a running sandbox), so the
  resource is not replaced under it.
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
from dataclasses import dataclass
from pathlib import Path

from xzctl.errors import BadInputError, ConflictError

STATE_ENV = "XZCTL_STATE_DIR"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def state_dir(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get(STATE_ENV) or ".xzctl")


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
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


def proc_start(pid: int) -> int | None:
    """The process start time in clock ticks (field 22 of /proc/PID/stat); None when gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    if not fields or fields[0] == "Z":  # a zombie has exited; only its parent has not reaped it yet
        return None
    return int(fields[19]) if len(fields) > 19 else None


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Alive, and the same process as the one that started at `start` (when given)."""
    if pid <= 0:
        return False
    now = proc_start(pid)
    return now is not None and (start is None or now == start)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: an owner name (a rollout id, a region run) and the process acting for it."""

    owner: str
    pid: int
    host: str
    start: int | None

    @classmethod
    def me(cls, owner: str) -> Holder:
        pid = os.getpid()
        return cls(owner, pid, socket.gethostname(), proc_start(pid))

    def alive(self) -> bool:
        # another host's pid cannot be checked from here: assume it runs (fail closed)
        return self.host != socket.gethostname() or pid_alive(self.pid, self.start)

    def to_json(self) -> str:
        return json.dumps({"owner": self.owner, "pid": self.pid, "host": self.host, "start": self.start})

    @classmethod
    def read(cls, path: Path) -> Holder | None:
        """The holder recorded in `path`; None when free. An unreadable lock cannot prove it is free."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            start = data.get("start")
            return cls(str(data["owner"]), int(data["pid"]), str(data["host"]), int(start) if start else None)
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConflictError(
                f"lock {path} is unreadable", hint="inspect it; remove it if nothing holds it"
            ) from None


@contextlib.contextmanager
def guard(directory: Path) -> Iterator[None]:
    """Serialise lock changes under `directory` between processes on this machine."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".guard", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Claims:
    """Unfinished operations that depend on a resource: `<state dir>/claims/<resource>/<owner>` holds why."""

    def __init__(self, root: Path, resource: str) -> None:
        self.dir = root / "claims" / resource

    def _path(self, owner: str) -> Path:
        if not _NAME.match(owner):
            raise BadInputError(f"{owner!r} cannot name a claim")
        return self.dir / owner

    def add(self, owner: str, why: str) -> None:
        atomic_write(self._path(owner), why)

    def drop(self, owner: str) -> None:
        self._path(owner).unlink(missing_ok=True)

    def all(self) -> dict[str, str]:
        if not self.dir.is_dir():
            return {}
        return {p.name: p.read_text(encoding="utf-8") for p in sorted(self.dir.iterdir()) if _NAME.match(p.name)}

    def refuse_unless(self, force: bool, what: str) -> None:
        """ConflictError while an unfinished operation depends on `what`, unless `force`."""
        users = self.all()
        if users and not force:
            raise ConflictError(
                f"{len(users)} unfinished operation(s) depend on {what}: {'; '.join(users.values())}",
                hint=f"finish them first (xzctl rollout resume|abort {next(iter(users))}), or pass --force",
            )
