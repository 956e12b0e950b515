"""Durable rollout state: one typed JSON file per rollout, written atomically, and per-node locks.

A rollout may be killed at any moment (kill -9, a lost SSH session, a node reboot). Every deploy is
written BEFORE it is applied (`pending`: the pins about to be deployed and why) and confirmed after
(`applied`), so `resume` knows whether the last deploy may be half-done. The file carries a schema
version; a file of another version is refused with a clear error rather than half-understood.

What a rollout needs to carry on is recorded at start (thresholds, node order, baseline pins, the
spec's hash), so a resume does not depend on the fleet spec file staying the same.

Locks (locks.py): a rollout holds only the edge nodes its next deploy changes, and says which process drives it.
"""

from __future__ import annotations

import json
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xzctl.errors import BadInputError, ConflictError, NotFoundError, UnknownStateError
from xzctl.rollout.locks import NodeLocks
from xzctl.state import Claims, atomic_write, state_dir

SCHEMA_VERSION = 2
ID_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kubectl's generated-name alphabet: no vowels, no look-alikes
ID_SUFFIX = 5


class Phase(StrEnum):
    PROGRESSING = "progressing"
    PAUSED = "paused"
    ROLLING_BACK = "rolling_back"
    ABORTING = "aborting"
    PROMOTED = "promoted"
    PARTIAL = "partial"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


TERMINAL = frozenset({Phase.PROMOTED, Phase.PARTIAL, Phase.ROLLED_BACK, Phase.ABORTED})
BACKWARD = frozenset({Phase.ROLLING_BACK, Phase.ABORTING})
RETRIABLE = frozenset({Phase.ROLLED_BACK, Phase.ABORTED})  # `rollout retry` runs these again
UNDOABLE = frozenset({Phase.PROMOTED, Phase.PARTIAL})  # `rollout undo` returns their nodes to the previous release

# The exit code of a command that leaves a rollout in this phase (README's table is tested against it):
# 0 only when the image was analysed and is stable on every planned node.
EXIT_CODES: dict[Phase, int] = {
    Phase.PROMOTED: 0,
    Phase.ROLLED_BACK: 1,
    Phase.ABORTED: 3,
    Phase.PARTIAL: 3,
    Phase.PAUSED: 3,
    Phase.PROGRESSING: 3,
    Phase.ROLLING_BACK: 3,
    Phase.ABORTING: 3,
}


class StepStatus(StrEnum):
    PENDING = "pending"
    ANALYZING = "analyzing"
    PASSED = "passed"
    FAILED = "failed"  # its analysis failed: the rollout rolled back
    STOPPED = "stopped"  # the rollout went back (abort, missing data, deploy error) while it ran


class Cause(StrEnum):
    NONE = ""
    INCONCLUSIVE = "inconclusive"
    HOLD = "hold"
    ANALYSIS_FAILED = "analysis_failed"
    MISSING_DATA = "missing_data"
    OPERATOR = "operator"
    DEPLOY_FAILED = "deploy_failed"
    LOCKED = "locked"  # a node the next deploy changes is held by another rollout
    FORCED = "forced"  # aborted without deploying: the deployer's target is gone


class Result(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    PENDING = "pending"  # no samples yet while the step's samples span less than the window: waited for, not counted


class Purpose(StrEnum):
    STEP = "step"
    PROMOTE = "promote"
    RESTORE = "restore"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Model):
    """What the analysis judges against, recorded at start."""

    error_ratio: float = Field(ge=0)  # the error-rate KPI (0..1)
    p95_seconds: float = Field(gt=0)  # the service's latency KPI
    inference_error_ratio: float = Field(ge=0)
    latency_vs_stable: float = 1.5  # canary p95 this many times the stable p95 fails even within the KPI
    # ...compared only over this many requests (or turns) per track: 1/(1-0.95), below which a p95 is the slowest
    # one, so one slow request of a lightly used track reads as a slower release (or hides one)
    min_samples: int = Field(20, ge=1)
    errors_vs_stable: float = 2.0  # canary error ratios must breach the KPI and be this many times stable's
    extra: dict[str, float] = Field(default_factory=dict)  # KPIs of checks registered by name (analysis.CHECKS)


class Settings(_Model):
    interval_seconds: float = Field(60.0, ge=0.1, le=3600)
    checks: int = Field(5, ge=1, le=1000)
    on_unreachable: str = Field("wait", pattern="^(wait|hold)$")  # wait: count as errors; hold: pause
    error_limit: int = Field(4, ge=0, le=100)  # consecutive errors tolerated, as Argo's consecutiveErrorLimit
    # Failed and inconclusive measurements a step tolerates before it rolls back or pauses: Argo's failureLimit and
    # inconclusiveLimit, with Argo's defaults (0: the first one decides); raise them for noisy metrics.
    failure_limit: int = Field(0, ge=0, le=100)
    inconclusive_limit: int = Field(0, ge=0, le=100)
    window_seconds: float = Field(0.0, ge=0)  # 0: two intervals
    warmup_seconds: float = Field(0.0, ge=0, le=3600)  # after a deploy, samples before this are not judged

    @property
    def window(self) -> float:
        return self.window_seconds or max(2 * self.interval_seconds, 1.0)


class Step(_Model):
    name: str
    region: str
    nodes: list[str]
    locks: list[str] = Field(default_factory=list)  # what its deploy changes when more than its nodes (a region)
    status: StepStatus = StepStatus.PENDING
    successes: int = 0
    failures: int = 0  # failed measurements of this step (tolerated up to Settings.failure_limit)
    inconclusive: int = 0
    deployed_at: float | None = None  # when its deploy was confirmed: analysis reads only later samples


class Measurement(_Model):
    step: int
    at: float
    result: Result
    reason: str
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)  # name -> track -> value
    window_seconds: float = 0.0


class Pending(_Model):
    purpose: Purpose
    step: int
    pins: dict[str, Any]


class RolloutState(_Model):
    schema_version: int = SCHEMA_VERSION
    id: str
    service: str
    image: str
    fleet: str
    spec_hash: str
    settings: Settings
    thresholds: Thresholds
    deployer: dict[str, Any]  # how to rebuild the Deployer on resume (kind + parameters, never secrets)
    prometheus_url: str  # credentials redacted; auth comes from flags or the environment on resume
    prometheus_auth: list[str] = Field(default_factory=list)  # which kinds of credentials it used, never values
    nodes: list[str]  # the nodes it may lock: its own (in rollout order), plus the rest of its regions under Pulumi
    steps: list[Step]
    baseline: dict[str, Any]  # ImagePins JSON before the rollout: what a rollback restores
    applied: dict[str, Any] | None  # ImagePins JSON confirmed deployed; None: unknown (send everything)
    pending: Pending | None = None
    phase: Phase = Phase.PROGRESSING
    cause: Cause = Cause.NONE
    reason: str = ""
    step: int = 0
    consecutive_errors: int = 0
    skipped_nodes: dict[str, str] = Field(default_factory=dict)
    analysis: list[Measurement] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    created: float = 0.0
    updated: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.phase]

    @property
    def regions(self) -> list[str]:
        return list(dict.fromkeys(s.region for s in self.steps))

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "rollout state") -> RolloutState:
        version = data.get("schema_version", 1) if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise UnknownStateError(
                f"{where}: schema version {version} is not the {SCHEMA_VERSION} this xzctl reads",
                hint="drive it with the xzctl that started it, or: xzctl rollout abort ID --force",
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise UnknownStateError(f"{where}: rollout state is unreadable: {exc.errors()[0]['msg']}") from None


class StateStore(NodeLocks):
    """Rollout state files and node locks under <state dir>/rollouts/."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = state_dir(root)
        self.dir = self.root / "rollouts"
        self.locks = self.dir / "locks"

    # --- state files -------------------------------------------------------------------------

    def path(self, rollout_id: str) -> Path:
        if not rollout_id or not all(ch.isalnum() or ch in "-_." for ch in rollout_id) or len(rollout_id) > 128:
            raise BadInputError(f"{rollout_id!r} is not a rollout id", hint="see: xzctl rollout status")
        return self.dir / f"{rollout_id}.json"

    def new_id(self, service: str) -> str:
        """`<service>-<5 chars>`, like kubectl's generated names, unique in this state dir."""
        prefix = service.replace("_", "-")
        for _ in range(100):
            candidate = f"{prefix}-{''.join(secrets.choice(ID_ALPHABET) for _ in range(ID_SUFFIX))}"
            if not self.path(candidate).exists():
                return candidate
        raise ConflictError(f"no free rollout id for {prefix} in {self.dir} after 100 tries")

    def save(self, state: RolloutState) -> None:
        atomic_write(self.path(state.id), json.dumps(state.to_json(), indent=1, sort_keys=True))

    def load(self, rollout_id: str) -> RolloutState:
        path = self.path(rollout_id)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(f"no rollout {rollout_id!r} in {self.dir}", hint="see: xzctl rollout status") from None
        except ValueError as exc:
            raise UnknownStateError(f"{path}: rollout state is unreadable: {exc}") from None
        return RolloutState.from_json(data, str(path))

    def all(self) -> list[RolloutState]:
        """Every readable rollout, oldest first (`unreadable()` names the others)."""
        return sorted(self._scan()[0], key=lambda s: s.created)

    def unreadable(self) -> dict[str, str]:
        """Rollout files that cannot be read (half written, another xzctl version): file -> why."""
        return self._scan()[1]

    def _scan(self) -> tuple[list[RolloutState], dict[str, str]]:
        states: list[RolloutState] = []
        bad: dict[str, str] = {}
        for path in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                states.append(self.load(path.stem))
            except (UnknownStateError, BadInputError) as exc:  # one bad file must not hide every other rollout
                bad[str(path)] = exc.message
        return states, bad

    def latest(self, phases: frozenset[Phase] | None = None) -> RolloutState:
        """The latest unfinished rollout, else the latest one; only those in `phases` when given."""
        states = [s for s in self.all() if phases is None or s.phase in phases]
        if not states:
            which = " or ".join(sorted(p.value for p in phases)) + " " if phases else ""
            raise NotFoundError(f"no {which}rollout recorded in {self.dir}", hint="see: xzctl rollout status")
        unfinished = [s for s in states if not s.terminal]
        return (unfinished or states)[-1]

    def abort_requested(self, rollout_id: str) -> bool:
        return (self.dir / f"{rollout_id}.abort").exists()

    def request_abort(self, rollout_id: str, reason: str) -> None:
        atomic_write(self.dir / f"{rollout_id}.abort", reason)

    def clear_abort(self, rollout_id: str) -> None:
        (self.dir / f"{rollout_id}.abort").unlink(missing_ok=True)

    # A pause asked of the process driving a rollout (`rollout pause`), as an abort is: a file it polls.
    def pause_requested(self, rollout_id: str) -> bool:
        return (self.dir / f"{rollout_id}.pause").exists()

    def request_pause(self, rollout_id: str) -> None:
        atomic_write(self.dir / f"{rollout_id}.pause", "paused by the operator")

    def clear_pause(self, rollout_id: str) -> None:
        (self.dir / f"{rollout_id}.pause").unlink(missing_ok=True)

    def claims(self, resource: str) -> Claims:
        return Claims(self.root, resource)
