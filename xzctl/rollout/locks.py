"""Edge-node locks that follow a rollout, and the record of which process drives it.

A rollout holds only the nodes its next deploy changes: a step's nodes from just before that step's deploy until
its analysis passes, every node carrying its canary while it promotes or restores, nothing once it ends. So a
rollout does not keep nodes it has not reached (a tts canary runs on a node a running asr rollout will reach
later) and a killed one leaves locked at most the nodes it was on. Under Pulumi a step's lock unit is its whole
region, as one stack update rewrites every node of it (`Step.locks`).

A node held by another unfinished rollout refuses (`NodeLockedError`, exit 5), even when that rollout's process died:
the pins are mid-change, so the error names the command that frees it (resume or abort). A lock whose rollout
ended is stale and taken over. Which process drives a rollout is its own file (`<id>.driver`), apart from the
node locks, so a rollout between two steps (holding no node) is still known to be running.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from xzctl.errors import ConflictError, NotFoundError
from xzctl.state import Holder, atomic_write, guard

if TYPE_CHECKING:
    from xzctl.rollout.state import RolloutState


class NodeLockedError(ConflictError):
    """An edge node another unfinished rollout holds; `running`: its process is alive and will let go."""

    def __init__(self, message: str, *, hint: str, owner: str, node: str, running: bool) -> None:
        super().__init__(message, hint=hint)
        self.owner, self.node, self.running = owner, node, running


class NodeLocks:
    """The lock half of the state store (`StateStore`): lock files under `<dir>/locks`, driver files in `<dir>`."""

    dir: Path
    locks: Path

    def load(self, rollout_id: str) -> RolloutState:
        raise NotImplementedError

    # --- storage (a test store keeps these in memory) -------------------------------------------

    def holder(self, node: str) -> Holder | None:
        return Holder.read(self.locks / f"{node}.lock")

    def _write_lock(self, node: str, holder: Holder) -> None:
        atomic_write(self.locks / f"{node}.lock", holder.to_json())

    def _drop_lock(self, node: str) -> None:
        (self.locks / f"{node}.lock").unlink(missing_ok=True)

    def _driver_file(self, rollout_id: str) -> Path:
        return self.dir / f"{rollout_id}.driver"

    def _read_driver(self, rollout_id: str) -> Holder | None:
        return Holder.read(self._driver_file(rollout_id))

    def _write_driver(self, holder: Holder) -> None:
        atomic_write(self._driver_file(holder.owner), holder.to_json())

    def _drop_driver(self, rollout_id: str) -> None:
        self._driver_file(rollout_id).unlink(missing_ok=True)

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        with guard(self.locks):
            yield

    # --- decisions -------------------------------------------------------------------------------

    def _owner(self, rollout_id: str) -> RolloutState | None:
        try:
            return self.load(rollout_id)
        except NotFoundError:
            return None  # its state file is gone: nothing to resume, the lock protects nothing

    def _check_free(self, rollout_id: str, node: str) -> None:
        held = self.holder(node)
        if held is None or held.owner == rollout_id:
            return
        owner = self._owner(held.owner)
        if owner is None or owner.terminal:
            return  # stale: its rollout ended but the lock survived a crash
        other = held.owner
        if owner.phase.value == "paused":
            raise NodeLockedError(
                f"edge node {node} is held by rollout {other}, paused there ({owner.reason})",
                hint=f"xzctl rollout resume {other} or xzctl rollout abort {other}",
                owner=other, node=node, running=False,
            )  # fmt: skip
        if held.alive():
            raise NodeLockedError(
                f"rollout {other} is running on edge node {node} (pid {held.pid} on {held.host})",
                hint=f"wait for it (xzctl rollout status {other}), or: xzctl rollout abort {other}",
                owner=other, node=node, running=True,
            )  # fmt: skip
        raise NodeLockedError(
            f"rollout {other} on edge node {node} was interrupted (pid {held.pid} is gone) and left it mid-change",
            hint=f"xzctl rollout resume {other} or xzctl rollout abort {other}",
            owner=other, node=node, running=False,
        )  # fmt: skip

    def hold(self, state: RolloutState, nodes: list[str]) -> None:
        """Hold exactly `nodes` for `state`: every one of them or none (NodeLockedError); the rest it held is let go."""
        with self._guarded():
            for node in nodes:
                self._check_free(state.id, node)
            me = Holder.me(state.id)
            for node in nodes:
                self._write_lock(node, me)
            for node in state.nodes:
                held = self.holder(node) if node not in nodes else None
                if held is not None and held.owner == state.id:
                    self._drop_lock(node)

    def held(self, state: RolloutState) -> list[str]:
        """The nodes `state` holds now."""
        return [n for n in state.nodes if (h := self.holder(n)) is not None and h.owner == state.id]

    def take_over(self, state: RolloutState) -> None:
        """Become the process driving `state` (start, resume, promote, retry, abort after a crash); the nodes it
        holds are rewritten as this process's."""
        with self._guarded():
            driver = self._read_driver(state.id)
            if driver is not None and driver.pid != os.getpid() and driver.alive():
                raise ConflictError(
                    f"rollout {state.id} is being driven by pid {driver.pid} on {driver.host}",
                    hint=f"stop that process, or: xzctl rollout abort {state.id}",
                )
            me = Holder.me(state.id)
            self._write_driver(me)
            for node in self.held(state):
                self._write_lock(node, me)

    def driver(self, state: RolloutState) -> Holder | None:
        """The live process driving this rollout, if any."""
        held = self._read_driver(state.id)
        return held if held is not None and held.alive() else None

    def release(self, state: RolloutState) -> None:
        """A finished rollout lets go of every node and of its driver record."""
        self.hold(state, [])
        with self._guarded():
            self._drop_driver(state.id)
