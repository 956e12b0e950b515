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

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from xzctl.errors import BadInputError, ConflictError, UnknownStateError
from xzctl.manifests.pins import ImagePins
from xzctl.rollout.deploy import Deployer
from xzctl.rollout.plan import canary_nodes, lock_set, plan_steps, promoted_pins, scoped, step_pins
from xzctl.rollout.state import (
    BACKWARD,
    Cause,
    Measurement,
    Phase,
    Purpose,
    Result,
    RolloutState,
    Settings,
    StateStore,
    StepStatus,
    Thresholds,
)
from xzctl.rollout.transitions import MAX_EVENTS, SANDBOX, EventSink, Transitions, release
from xzctl.spec.models import Fleet

MAX_TICKS = 1_000_000  # a bound on transitions; a real rollout needs steps x (checks + errors) of them
WAIT_SLICE_SECONDS = 0.2  # how often a waiting rollout looks for an abort request


class Analysis(Protocol):
    """What the engine asks of an analysis (xzctl.rollout.analysis.Analyzer, or a scripted one in tests)."""

    min_window_seconds: float  # the shortest window a rate is computed on (two scrapes)

    def unreachable(self, nodes: list[str]) -> list[str]: ...

    def measure(
        self, step: int, nodes: list[str], window_seconds: float, since_seconds: float | None = None
    ) -> Measurement: ...


def file_hash(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "missing"


def new_rollout(
    fleet: Fleet,
    fleet_path: str,
    service: str,
    image: str,
    *,
    rollout_id: str,
    baseline: ImagePins,
    settings: Settings,
    thresholds: Thresholds,
    deployer: Deployer,
    prometheus_url: str,
    first_region: str | None = None,
    only_nodes: list[str] | None = None,
    skip_nodes: dict[str, str] | None = None,
) -> RolloutState:
    """A rollout ready to run (not yet saved nor locked). `skip_nodes`: node -> why the operator left it out."""
    skip = dict(skip_nodes or {})
    steps = plan_steps(fleet, service, first_region, only=only_nodes, skip=list(skip))
    nodes = [n for s in steps for n in s.nodes]
    missing = [n for n in nodes if service not in baseline.nodes.get(n, {})]
    if missing:
        raise BadInputError(f"the deploy target does not know {service} on {', '.join(missing)}")
    busy = [n for n in nodes if baseline.get(n, service).canary]
    if busy:
        raise ConflictError(
            f"{', '.join(busy)} already run a {service} canary",
            hint="finish or abort that rollout first (xzctl rollout status)",
        )
    if all(baseline.get(n, service).stable == image for n in nodes):
        raise BadInputError(f"{image} already runs as the stable {service} on every node; nothing to roll out")
    locked = lock_set(fleet, steps, per_region=deployer.config().get("kind") == "pulumi")
    baseline = scoped(baseline, locked)
    now = time.time()
    return RolloutState(
        id=rollout_id,
        service=service,
        image=image,
        fleet=fleet_path,
        spec_hash=file_hash(fleet_path),
        settings=settings,
        thresholds=thresholds,
        deployer=deployer.config(),
        prometheus_url=prometheus_url,
        nodes=locked,
        steps=steps,
        baseline=baseline.to_json(),
        applied=baseline.to_json(),
        skipped_nodes=skip,
        created=now,
        updated=now,
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
        super().__init__(store, state, deployer, on_event=on_event, clock=clock)
        self.analyzer = analyzer
        self._sleep = sleep
        self._measured: float | None = None  # when this process last began a measurement

    # --- the loop ----------------------------------------------------------------------------

    def start(self) -> RolloutState:
        """Lock the nodes, record the rollout, run it."""
        s = self.state
        self.store.acquire(s.id, s.nodes)
        try:
            if s.deployer.get("kind") == SANDBOX:
                self.store.claims(SANDBOX).add(s.id, f"rollout {s.id} ({s.service} -> {s.image}) is unfinished")
            planned = canary_nodes(s.steps, len(s.steps) - 1)
            self.event("started", f"{s.service} -> {s.image} on {len(planned)} node(s) in {len(s.steps)} step(s)")
            self.save()
        except BaseException:
            self.store.release(s)
            self.store.claims(SANDBOX).drop(s.id)
            raise
        return self.run()

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
            self._apply_pending()
            return
        if s.phase in BACKWARD:
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
        pins = step_pins(ImagePins.from_json(s.baseline), s.service, s.image, canary_nodes(s.steps, s.step))
        self._transition(pins, Purpose.STEP)

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
