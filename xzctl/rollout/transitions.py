"""The transitions of a rollout; `RolloutEngine` (engine.py) decides which one comes next.

Every deploy is a transition written as intent (`pending`) before it is applied and confirmed after; the
effect of the transition (a step now under analysis, promoted, restored) is recorded in the same write
as the confirmation, so a state loaded after a kill -9 at any moment can be carried on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from xzctl.errors import BadInputError, ExternalToolError, XzctlError
from xzctl.manifests.pins import ImagePins
from xzctl.rollout.deploy import Deployer
from xzctl.rollout.plan import canary_nodes
from xzctl.rollout.state import Cause, Pending, Phase, Purpose, RolloutState, Settings, StateStore, StepStatus

MAX_EVENTS = 500
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.state = state
        self.deployer = deployer
        self._on_event = on_event
        self._clock = clock

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

    # --- transitions -------------------------------------------------------------------------

    def _transition(self, pins: ImagePins, purpose: Purpose) -> None:
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
        s.applied = pins.to_json()
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
