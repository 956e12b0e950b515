"""The one status vocabulary (ok, warn, unknown, crit) of every check and of the plan, and how a
status becomes an exit code. The plan says "fail" for crit (it judges a spec, see xzctl.plan.static).

A crit is a known failure and outranks unknown (missing data) when a report has both: the exit code
then says "failed" (1) rather than "unknown" (3). Warn never fails a run: it is for people, not CI.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from xzctl.errors import CheckFailedError, UnknownStateError, XzctlError


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    UNKNOWN = "unknown"
    CRIT = "crit"


_RANK = {Status.OK: 0, Status.WARN: 1, Status.UNKNOWN: 2, Status.CRIT: 3}
# crit, unknown, warn, ok: the order in which tables that show only some rows pick them
WORST_FIRST = sorted(Status, key=_RANK.__getitem__, reverse=True)


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default=Status.OK)


def failure(status: Status, summary: str) -> XzctlError | None:
    """The error that carries a verdict's exit code (1 crit, 3 unknown), or None when it passes."""
    if status is Status.CRIT:
        return CheckFailedError(summary)
    if status is Status.UNKNOWN:
        return UnknownStateError(summary)
    return None
