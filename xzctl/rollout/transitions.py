"""The transitions of a rollout; `RolloutEngine` (engine.py) decides which one comes next.

Every deploy is a transition written as intent (`pending`) before it is applied and confirmed after; the
effect of the transition (a step now under analysis, promoted, restored) is recorded in the same write
as the confirmation, so a state loaded after a kill -9 at any moment can be carried on.

Before a deploy the rollout holds the nodes it changes (locks.py) and builds on what the target runs now: other
rollouts may have changed those nodes since it started (another service's canary, a release promoted on a node
it had not reached yet), and a deploy must not put back what they did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from xzctl.errors import BadInputError, ConflictError, ExternalToolError, XzctlError
from xzctl.manifests.pins import ImagePins, ServicePin
from xzctl.rollout.deploy import Deployer
from xzctl.rollout.locks import NodeLockedError
from xzctl.rollout.plan import canary_nodes, scoped, step_locks
from xzctl.rollout.state import (
    BACKWARD,
    Cause,
    Pending,
    Phase,
    Purpose,
    RolloutState,
    Settings,
    StateStore,
    StepStatus,
)

MAX_EVENTS = 500
WAIT_SLICE_SECONDS = 0.2  # how often a waiting rollout looks for an abort request
# How long a deploy waits for a node another running rollout holds (about one step of it) before pausing.
LOCK_WAIT_SECONDS = 1800.0
SANDBOX = "sandbox"  # the claim a sandbox rollout holds on its sandbox while unfinished

EventSink = Callable[[str, RolloutState, dict[str, Any]], None]


class Transitions:
    """The recorded moves of one rollout: deploy (intent, apply, confirm), go back, pause, finish."""

    def __init__(
        self,
        store: StateStore,
        state: RolloutState,
        deployer: Deployer,
        *,
        on_event: EventSink | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.state = state
        self.deployer = deployer
        self._on_event = on_event
        self._sleep = sleep
        self._clock = clock
        self._blocked_since: float | None = None  # when this process found a node it needs held by another rollout

    @property
    def settings(self) -> Settings:
        return self.state.settings

    # --- bookkeeping -------------------------------------------------------------------------

    def event(self, kind: str, message: str, **detail: Any) -> None:
        s = self.state
        entry = {"at": self._clock(), "kind": kind, "message": message, **detail}
        s.events = [*s.events[-(MAX_EVENTS - 1) :], entry]
        if self._on_event is not None:
            self._on_event(kind, s, {"message": message, **detail})

    def save(self) -> None:
        self.state.updated = self._clock()
        self.store.save(self.state)

    def _wait(self, seconds: float) -> bool:
        """Sleep `seconds`; False when an abort or a pause was requested meanwhile."""
        deadline = self._clock() + seconds
        for _ in range(int(seconds / WAIT_SLICE_SECONDS) + 2):
            if self.store.abort_requested(self.state.id) or self.store.pause_requested(self.state.id):
                return False
            left = deadline - self._clock()
            if left <= 0:
                break
            self._sleep(min(WAIT_SLICE_SECONDS, left))
        return True

    # --- locks and the target as it is ----------------------------------------------------------

    def _carries(self, node: str) -> bool:
        """Whether `node` runs this rollout's canary, as far as the recorded pins tell (unknown: it may)."""
        s = self.state
        if s.applied is None:
            return True
        pin = ImagePins.from_json(s.applied).nodes.get(node, {}).get(s.service)
        return pin is not None and pin.canary == s.image

    def reach(self) -> list[int]:
        """The steps whose nodes the current step's deploy gives the canary: the current one, and after a retry
        every earlier one whose nodes lost it with the restore."""
        s = self.state
        k = min(s.step, len(s.steps) - 1)
        return [j for j in range(k) if not all(self._carries(n) for n in s.steps[j].nodes)] + [k]

    def scope(self, purpose: Purpose) -> list[str]:
        """The nodes a deploy of `purpose` changes, which the rollout holds while it runs."""
        s = self.state
        if purpose == Purpose.PROMOTE:
            return step_locks(s.steps, list(range(len(s.steps))))
        if purpose == Purpose.RESTORE:  # the steps whose nodes may carry its canary; not one it never reached
            upto = range(min(s.step, len(s.steps) - 1) + 1)
            return step_locks(s.steps, [j for j in upto if any(self._carries(n) for n in s.steps[j].nodes)])
        return step_locks(s.steps, self.reach())

    def _hold(self, nodes: list[str]) -> bool:
        """Hold `nodes`. When another rollout holds one: False after waiting a while if that one runs (it lets go
        when its step ends), else pause (going forward) or stop with the command that frees it (going back)."""
        s = self.state
        try:
            self.store.hold(s, nodes)
        except NodeLockedError as exc:
            now = self._clock()
            if self._blocked_since is None:
                self._blocked_since = now
                self.event("waiting", exc.message)
                self.save()
            if exc.running and now - self._blocked_since < LOCK_WAIT_SECONDS:
                if s.phase in BACKWARD:  # going back no request changes anything: just wait
                    self._sleep(self.settings.interval_seconds)
                else:
                    self._wait(self.settings.interval_seconds)
                return False
            self._blocked_since = None
            if s.phase in BACKWARD:
                self.save()
                raise ConflictError(
                    f"rollout {s.id} cannot restore edge node {exc.node}: {exc.message}",
                    hint=f"{exc.hint}; then: xzctl rollout resume {s.id}",
                ) from exc
            self._pause(Cause.LOCKED, f"{exc.message}; {exc.hint}; then: xzctl rollout resume {s.id}")
            return False
        self._blocked_since = None
        return True

    def _refresh(self, reached: list[str]) -> bool:
        """Build on what the target runs now (when it can tell): every pin of the nodes it may deploy to but its own
        service's on the nodes it rolls to, and that one's stable where a step reaches now. False (paused) when a
        reached node runs another rollout's canary of this service."""
        s = self.state
        now = self.deployer.current()
        if now is None:
            return True
        baseline = ImagePins.from_json(s.baseline)
        applied = ImagePins.from_json(s.applied) if s.applied is not None else None
        ours = set(canary_nodes(s.steps, len(s.steps) - 1))  # not the rest of a region a Pulumi update rewrites
        for node in s.nodes:
            for service, pin in now.nodes.get(node, {}).items():
                own = service == s.service and node in ours
                if own and node not in reached:
                    continue  # this rollout's own change, or what it restores to: kept as recorded
                if own and pin.canary not in (None, s.image):
                    self._pause(
                        Cause.LOCKED,
                        f"edge node {node} runs a {service} canary of another rollout ({pin.canary}); finish or "
                        f"abort that one (xzctl rollout status), then: xzctl rollout resume {s.id}",
                    )
                    self.store.hold(s, [])  # nothing of it changed there: it holds no node while paused
                    return False
                baseline = baseline.with_pin(node, service, ServicePin(pin.stable) if own else pin)
                if applied is not None:
                    applied = applied.with_pin(node, service, pin)
        s.baseline, s.applied = baseline.to_json(), applied.to_json() if applied is not None else None
        return True

    # --- transitions -------------------------------------------------------------------------

    def _transition(self, pins: ImagePins, purpose: Purpose) -> None:
        pins = scoped(pins, self.scope(purpose))  # nothing outside the nodes it holds
        self.state.pending = Pending(purpose=purpose, step=self.state.step, pins=pins.to_json())
        self.save()  # intent first: a crash from here on finds it on resume
        self._apply_pending()

    def _apply_pending(self) -> None:
        s = self.state
        assert s.pending is not None
        purpose = s.pending.purpose
        pins = ImagePins.from_json(s.pending.pins)
        previous = ImagePins.from_json(s.applied) if s.applied is not None else None
        try:
            self.deployer.apply(pins, previous)
        except XzctlError as exc:
            if purpose == Purpose.RESTORE:
                self.event("deploy-failed", f"restoring the previous images failed: {exc.message}")
                self.save()
                raise ExternalToolError(
                    f"rollout {s.id}: restoring the previous images failed: {exc.message}",
                    hint=f"retry: xzctl rollout abort {s.id}; if the deploy target is gone: "
                    f"xzctl rollout abort {s.id} --force",
                ) from exc
            # some nodes may already run the new pins: forget what is applied, so the restore sends everything
            s.pending, s.applied = None, None
            self._back(Phase.ROLLING_BACK, Cause.DEPLOY_FAILED, f"deploy failed ({purpose.value}): {exc.message}")
            return
        s.applied = {**(s.applied or {}), **pins.to_json()}
        s.pending = None
        if purpose == Purpose.STEP:
            step = s.steps[s.step]
            step.status, step.successes, step.deployed_at = StepStatus.ANALYZING, 0, self._clock()
            self.event("applied", f"step {s.step + 1}/{len(s.steps)} {step.name}: canary on {', '.join(step.nodes)}")
        elif purpose == Purpose.PROMOTE:
            self._promoted()
        else:
            s.phase = Phase.ROLLED_BACK if s.phase == Phase.ROLLING_BACK else Phase.ABORTED
            self.event(s.phase.value, f"previous images restored on every node: {s.reason}")
        self.save()

    def _promoted(self) -> None:
        s = self.state
        nodes = canary_nodes(s.steps, len(s.steps) - 1)
        if s.skipped_nodes:
            s.phase = Phase.PARTIAL
            behind = sorted(s.skipped_nodes)
            s.reason = (
                f"{s.image} is stable on {len(nodes)} node(s); left behind on the previous image: "
                f"{', '.join(behind)}; converge them with: xzctl rollout canary {s.service.replace('_', '-')} "
                f"{s.image} {' '.join(f'--node {n}' for n in behind)}"
            )
        else:
            s.phase = Phase.PROMOTED
            s.reason = f"{s.image} is stable on every planned node ({len(nodes)})"
        self.event(s.phase.value, s.reason)

    def _back(self, phase: Phase, cause: Cause, reason: str) -> None:
        """Decide to restore the baseline (recorded before it is applied)."""
        s = self.state
        s.phase, s.cause, s.reason = phase, cause, reason
        for step in s.steps:
            if step.status == StepStatus.ANALYZING:
                step.status = StepStatus.FAILED if cause == Cause.ANALYSIS_FAILED else StepStatus.STOPPED
        self.event(phase.value, reason)
        self.save()

    def _pause(self, cause: Cause, reason: str) -> None:
        s = self.state
        s.phase, s.cause, s.reason = Phase.PAUSED, cause, reason
        self.event("paused", reason)
        self.save()


def force_abort(store: StateStore, state: RolloutState, reason: str = "aborted by the operator") -> RolloutState:
    """The deployer's target is gone (a sandbox replaced, a cluster deleted): mark the rollout aborted without
    deploying anything and release its locks; the reason says what the operator must check by hand."""
    s = state
    if s.terminal:
        raise BadInputError(f"rollout {s.id} is already {s.phase.value}")
    store.take_over(s)
    s.pending = None
    s.phase, s.cause = Phase.ABORTED, Cause.FORCED
    s.reason = (
        f"{reason} with --force: nothing was deployed. Check that "
        f"{', '.join(canary_nodes(s.steps, len(s.steps) - 1))} run the previous "
        f"{s.service} image and no canary"
    )
    for step in s.steps:
        if step.status == StepStatus.ANALYZING:
            step.status = StepStatus.STOPPED
    s.events = [*s.events[-(MAX_EVENTS - 1) :], {"at": time.time(), "kind": "aborted", "message": s.reason}]
    s.updated = time.time()
    store.save(s)
    release(store, s)
    return s


def release(store: StateStore, state: RolloutState) -> None:
    """A finished rollout lets go of its nodes, its abort request and its claim on the sandbox."""
    store.release(state)
    store.clear_abort(state.id)
    store.claims(SANDBOX).drop(state.id)
