"""The canary driver: apply a step, analyse it, go on, pause, or go back. Crash-safe, fail closed.

The deploys themselves are transitions (transitions.py: intent before apply, effect recorded with the
confirmation), so `run` may be called on a state loaded after a kill -9 at any moment.

Rules that make "promoted" mean "analysed and healthy everywhere":
- a step passes only on `checks` successful measurements, each over samples taken after that step's
  deploy plus the image's warm-up; an unscraped node, a missing series or no Prometheus is an error, never a
  pass or a skip, and more than `error_limit` errors in a row abort the rollout; a track with no finished request
  is waited for (pending) until the step's samples span the window, then inconclusive (counted against
  `inconclusive_limit`, then a pause), never a pass;
- nodes are left out only on the operator's word (recorded at start); a rollout that leaves any planned
  node behind ends `partial`, never `promoted`;
- abort means backward: once a rollout goes back, a pending forward deploy (step or promote) is dropped,
  never applied, and the only deploys are towards the baseline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Protocol

from xzctl.errors import BadInputError, UnknownStateError
from xzctl.manifests.pins import ImagePins
from xzctl.rollout.deploy import Deployer
from xzctl.rollout.plan import canary_nodes, promoted_pins, step_pins
from xzctl.rollout.start import file_hash
from xzctl.rollout.state import (
    BACKWARD,
    RETRIABLE,
    Cause,
    Measurement,
    Phase,
    Purpose,
    Result,
    RolloutState,
    StateStore,
    StepStatus,
)
from xzctl.rollout.transitions import MAX_EVENTS, SANDBOX, EventSink, Transitions, release

MAX_TICKS = 1_000_000  # a bound on transitions; a real rollout needs steps x (checks + errors) of them


class Analysis(Protocol):
    """What the engine asks of an analysis (xzctl.rollout.analysis.Analyzer, or a scripted one in tests)."""

    min_window_seconds: float  # the shortest window a rate is computed on (two scrapes)

    def unreachable(self, nodes: list[str]) -> list[str]: ...

    def measure(
        self, step: int, nodes: list[str], window_seconds: float, since_seconds: float | None = None
    ) -> Measurement: ...


def check_retriable(s: RolloutState) -> None:
    """BadInputError naming the command that fits, unless `s` is a rollout `retry` can run again."""
    if s.phase not in RETRIABLE:
        verb = "resume" if not s.terminal else "undo"
        raise BadInputError(
            f"rollout {s.id} is {s.phase.value}: only a rolled-back or aborted rollout is retried",
            hint=f"xzctl rollout {verb} {s.id if verb == 'resume' else s.service.replace('_', '-')}",
        )
    if s.cause == Cause.FORCED:
        raise BadInputError(
            f"rollout {s.id} was aborted with --force: what its nodes run is not known",
            hint=f"check them, then start anew: xzctl rollout canary {s.service.replace('_', '-')} {s.image}",
        )


class RolloutEngine(Transitions):
    def __init__(
        self,
        store: StateStore,
        state: RolloutState,
        deployer: Deployer,
        analyzer: Analysis,
        *,
        on_event: EventSink | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(store, state, deployer, on_event=on_event, sleep=sleep, clock=clock)
        self.analyzer = analyzer
        self._measured: float | None = None  # when this process last began a measurement

    # --- the loop ----------------------------------------------------------------------------

    def start(self) -> RolloutState:
        """Lock the first step's nodes, record the rollout, run it."""
        s = self.state
        self.store.take_over(s)
        try:
            self.store.hold(s, self.scope(Purpose.STEP))  # the first step's nodes: refused before anything is recorded
            self._claim()
            planned = canary_nodes(s.steps, len(s.steps) - 1)
            self.event("started", f"{s.service} -> {s.image} on {len(planned)} node(s) in {len(s.steps)} step(s)")
            self.save()
        except BaseException:
            self.store.release(s)
            self.store.claims(SANDBOX).drop(s.id)
            raise
        return self.run()

    def _claim(self) -> None:
        s = self.state
        if s.deployer.get("kind") == SANDBOX:  # the sandbox is not replaced under an unfinished rollout
            self.store.claims(SANDBOX).add(s.id, f"rollout {s.id} ({s.service} -> {s.image}) is unfinished")

    def run(self) -> RolloutState:
        s = self.state
        for _ in range(MAX_TICKS):
            if s.terminal or s.phase == Phase.PAUSED:
                break
            self._tick()
        else:
            raise UnknownStateError(f"rollout {s.id} did not settle in {MAX_TICKS} transitions")
        if s.terminal:
            release(self.store, s)
        return s

    def _tick(self) -> None:
        s = self.state
        if s.phase == Phase.PROGRESSING and self.store.abort_requested(s.id):
            self._back(Phase.ABORTING, Cause.OPERATOR, "aborted by the operator")
            return
        if s.phase == Phase.PROGRESSING and s.pending is None and self.store.pause_requested(s.id):
            self.pause()  # between deploys only: a half-done deploy is finished first
            return
        if s.pending is not None:
            backward = s.phase in BACKWARD
            if backward and s.pending.purpose != Purpose.RESTORE:
                # abort means backward: drop the forward deploy; it may be half-applied, so the restore
                # sends every pin (applied unknown)
                self.event("dropped", f"the pending {s.pending.purpose.value} deploy is dropped, not applied")
                s.pending, s.applied = None, None
                self.save()
                return
            if not backward and s.pending.purpose == Purpose.RESTORE:
                raise UnknownStateError(f"rollout {s.id} records a restore while {s.phase.value}: state is corrupt")
            if self._hold(self.scope(s.pending.purpose)):
                self._apply_pending()
            return
        if s.phase in BACKWARD:
            if self._hold(self.scope(Purpose.RESTORE)) and self._refresh([]):
                self._transition(ImagePins.from_json(s.baseline), Purpose.RESTORE)
        elif s.step >= len(s.steps):
            self._promote()
        elif s.steps[s.step].status == StepStatus.PENDING:
            self._start_step()
        elif s.steps[s.step].status == StepStatus.ANALYZING:
            self._analyze_once()
        else:  # passed
            s.step += 1
            self.save()

    # --- steps -------------------------------------------------------------------------------

    def _promote(self) -> None:
        s = self.state
        unproven = [st.name for st in s.steps if st.status != StepStatus.PASSED]
        nodes = canary_nodes(s.steps, len(s.steps) - 1)
        if unproven or not nodes:  # unreachable by construction; a promote must never rest on less
            raise UnknownStateError(f"rollout {s.id} cannot promote: steps not passed: {', '.join(unproven) or '-'}")
        if not (self._hold(self.scope(Purpose.PROMOTE)) and self._refresh([])):
            return
        final = promoted_pins(ImagePins.from_json(s.baseline), s.service, s.image, nodes)
        self._transition(final, Purpose.PROMOTE)

    def _start_step(self) -> None:
        s = self.state
        step = s.steps[s.step]
        if self.settings.on_unreachable == "hold":
            try:
                down = self.analyzer.unreachable(step.nodes)
            except UnknownStateError as exc:
                self._record(Measurement(step=s.step, at=self._clock(), result=Result.ERROR, reason=exc.message))
                if s.phase == Phase.PROGRESSING:
                    self._wait(self.settings.interval_seconds)
                return
            if down:
                self._pause(
                    Cause.HOLD, f"edge node(s) {', '.join(down)} unreachable; holding (resume when back, or abort)"
                )
                return
        reached = [n for j in self.reach() for n in s.steps[j].nodes]
        if not (self._hold(self.scope(Purpose.STEP)) and self._refresh(reached)):
            return
        pins = step_pins(ImagePins.from_json(s.baseline), s.service, s.image, canary_nodes(s.steps, s.step))
        self._transition(pins, Purpose.STEP)

    def _record(self, m: Measurement) -> None:
        s = self.state
        s.analysis = [*s.analysis[-(MAX_EVENTS - 1) :], m]
        self.event("analysis", m.reason, result=m.result.value, step=m.step, metrics=m.metrics)
        if m.result != Result.ERROR:
            s.consecutive_errors = 0
        else:
            s.consecutive_errors += 1
            if s.consecutive_errors > self.settings.error_limit:
                self._back(
                    Phase.ABORTING,
                    Cause.MISSING_DATA,
                    f"no verdict for {s.consecutive_errors} consecutive measurements ({m.reason})",
                )
                return
        self.save()

    def _analyze_once(self) -> None:
        s = self.state
        step = s.steps[s.step]
        # judge only samples taken after this step's deploy and the image's warm-up, over at least a
        # window a rate can be computed on
        start = (step.deployed_at if step.deployed_at is not None else self._clock()) + self.settings.warmup_seconds
        first = start + min(self.settings.window, self.analyzer.min_window_seconds)
        # one interval after the previous measurement began (a fixed cadence: query time does not add up)
        due = max(first, (self._measured or self._clock()) + self.settings.interval_seconds)
        if not self._wait(due - self._clock()):
            return  # the next tick sees the abort request
        self._measured = self._clock()
        since = self._measured - start  # every sample of this step: a track with none in the window is read over it
        m = self.analyzer.measure(s.step, canary_nodes(s.steps, s.step), min(self.settings.window, since), since)
        self._record(m)
        if s.phase != Phase.PROGRESSING:
            return
        if m.result == Result.SUCCESS:
            step.successes += 1
            if step.successes >= self.settings.checks:
                step.status = StepStatus.PASSED
                self.event("passed", f"step {s.step + 1}/{len(s.steps)} {step.name} passed {step.successes} checks")
            self.save()
            if step.status == StepStatus.PASSED:
                self.store.hold(s, [])  # its nodes are done: another rollout may act on them until promote
        elif m.result == Result.FAILURE:
            step.failures += 1
            if step.failures > self.settings.failure_limit:
                self._back(
                    Phase.ROLLING_BACK, Cause.ANALYSIS_FAILED, f"analysis failed at step {s.step + 1}: {m.reason}"
                )
            else:
                self._tolerated("failure", step.failures, self.settings.failure_limit)
        elif m.result == Result.INCONCLUSIVE:
            step.inconclusive += 1
            if step.inconclusive > self.settings.inconclusive_limit:
                self._pause(Cause.INCONCLUSIVE, f"inconclusive at step {s.step + 1}: {m.reason}; promote or abort")
            else:
                self._tolerated("inconclusive", step.inconclusive, self.settings.inconclusive_limit)

    def _tolerated(self, what: str, count: int, limit: int) -> None:
        # The measurement's reason is already in its analysis event: this says only where the step stands.
        self.event("tolerated", f"{what} {count} of {limit} tolerated at step {self.state.step + 1}")
        self.save()

    # --- operator actions --------------------------------------------------------------------

    def _check_spec(self, accept_spec_change: bool) -> None:
        s = self.state
        now = file_hash(s.fleet)
        if now == s.spec_hash:
            return
        if not accept_spec_change:
            raise BadInputError(
                f"the fleet spec {s.fleet} changed since rollout {s.id} started",
                hint=f"check the change, then: xzctl rollout resume {s.id} --accept-spec-change "
                f"(or xzctl rollout abort {s.id})",
            )
        s.spec_hash = now
        self.event("spec-changed", f"the operator accepted a changed fleet spec {s.fleet}")

    def resume(self, *, accept_spec_change: bool = False) -> RolloutState:
        """Carry on after a crash or a hold. Analysis of the current step starts over (old results are stale)."""
        s = self.state
        if s.terminal:
            raise BadInputError(f"rollout {s.id} is already {s.phase.value}")
        if s.phase == Phase.PAUSED and s.cause == Cause.INCONCLUSIVE:
            raise BadInputError(
                f"rollout {s.id} paused on an inconclusive analysis: {s.reason}",
                hint=f"xzctl rollout promote {s.id} or xzctl rollout abort {s.id}",
            )
        if s.phase not in BACKWARD:
            self._check_spec(accept_spec_change)  # going back restores the recorded baseline: no spec needed
        self.store.take_over(s)
        self.store.clear_pause(s.id)  # a pause asked of a process that died first is not carried over
        if s.phase == Phase.PAUSED:
            s.phase, s.cause, s.reason = Phase.PROGRESSING, Cause.NONE, ""
        if s.step < len(s.steps) and s.steps[s.step].status == StepStatus.ANALYZING:
            s.steps[s.step].successes = 0
        s.consecutive_errors = 0
        self.event("resumed", f"by pid {os.getpid()}")
        self.save()
        return self.run()

    def promote(self, *, full: bool = False, accept_spec_change: bool = False) -> RolloutState:
        """Accept the step an inconclusive analysis paused on and carry on with the next steps; `full` skips
        the remaining steps' analysis and promotes the image on every planned node now."""
        s = self.state
        if s.phase != Phase.PAUSED or s.cause != Cause.INCONCLUSIVE:
            cause = f" ({s.cause.value})" if s.cause else ""
            raise BadInputError(
                f"rollout {s.id} is {s.phase.value}{cause}, not paused on an inconclusive analysis",
                hint=f"promote accepts an inconclusive step; a held rollout resumes with: xzctl rollout resume {s.id}",
            )
        self._check_spec(accept_spec_change)
        self.store.take_over(s)
        accepted = s.steps[s.step :] if full else [s.steps[s.step]]
        for step in accepted:
            step.status = StepStatus.PASSED
        s.phase, s.cause, s.reason = Phase.PROGRESSING, Cause.NONE, ""
        names = ", ".join(step.name for step in accepted)
        self.event("promoted-step", f"accepted by the operator without analysis: {names}")
        self.save()
        return self.run()

    def pause(self) -> RolloutState:
        """Stop where it is, the nodes as they are and locked, until `rollout resume` (Argo's pause)."""
        s = self.state
        if s.phase != Phase.PROGRESSING:
            raise BadInputError(f"rollout {s.id} is {s.phase.value}, not progressing: nothing to pause")
        self.store.clear_pause(s.id)
        self._pause(Cause.OPERATOR, f"paused by the operator; xzctl rollout resume {s.id} (or abort)")
        return s

    def abort(self, reason: str = "aborted by the operator") -> RolloutState:
        """Restore the previous images everywhere (the caller made sure no live process drives it)."""
        s = self.state
        if s.terminal:
            raise BadInputError(f"rollout {s.id} is already {s.phase.value}")
        self.store.take_over(s)
        if s.phase not in BACKWARD:
            self._back(Phase.ABORTING, Cause.OPERATOR, reason)
        return self.run()

    def retry(self, *, accept_spec_change: bool = False) -> RolloutState:
        """Run a rolled-back or aborted rollout again from the step it stopped at (Argo's retry). The steps that
        had passed keep their verdicts and take the canary again with that step's deploy; that step is judged
        afresh, on what the nodes run now."""
        s = self.state
        check_retriable(s)
        self._check_spec(accept_spec_change)
        self.store.take_over(s)
        self.store.clear_abort(s.id)
        self.store.clear_pause(s.id)
        was = f"{s.phase.value} ({s.reason})"
        s.step = min(s.step, len(s.steps) - 1)  # a failed promote is retried from the last step, analysed again
        for step in s.steps[s.step :]:
            step.status, step.deployed_at = StepStatus.PENDING, None
            step.successes = step.failures = step.inconclusive = 0
        s.phase, s.cause, s.reason, s.consecutive_errors = Phase.PROGRESSING, Cause.NONE, "", 0
        self._claim()
        self.event("retried", f"was {was}; again from step {s.step + 1}/{len(s.steps)} {s.steps[s.step].name}")
        self.save()
        return self.run()
