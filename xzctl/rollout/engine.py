"""The canary state machine: apply a step, analyse it, go on, pause, or roll back. Crash-safe.

Every deploy is a transition written as intent (`pending`) before it is applied and confirmed after; the
effect of the transition (a step now under analysis, promoted, rolled back) is recorded in the same write
as the confirmation. `run` may therefore be called on a state loaded after a kill -9 at any moment: it
re-applies a pending deploy, then carries on from the recorded phase.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xzctl.errors import BadInputError, ConflictError, UnknownStateError, XzctlError
from xzctl.manifests.pins import ImagePins
from xzctl.prom import PrometheusClient
from xzctl.rollout.analysis import ERROR, FAILURE, INCONCLUSIVE, SUCCESS, Analyzer, Thresholds
from xzctl.rollout.deploy import Deployer
from xzctl.rollout.plan import METRIC_SERVICE, canary_nodes, plan_steps, promoted_pins, step_pins
from xzctl.rollout.state import Measurement, RolloutState, StateStore
from xzctl.spec import load_fleet
from xzctl.spec.models import Fleet

ERROR_LIMIT = 4  # consecutive analysis errors tolerated, as Argo Rollouts' consecutiveErrorLimit
MAX_EVENTS = 500
WAIT_SLICE_SECONDS = 0.2  # how often a waiting rollout looks for an abort request

EventSink = Callable[[str, RolloutState, dict[str, Any]], None]


@dataclass(frozen=True)
class Settings:
    interval_seconds: float = 60.0
    checks: int = 5
    on_unreachable: str = "skip"  # skip | hold
    error_limit: int = ERROR_LIMIT
    window_seconds: float | None = None  # default: two intervals

    def validated(self) -> Settings:
        if not 0.1 <= self.interval_seconds <= 3600:
            raise BadInputError(f"--interval {self.interval_seconds:g}s is out of range (0.1s..1h)")
        if not 1 <= self.checks <= 1000:
            raise BadInputError(f"--checks {self.checks} is out of range (1..1000)")
        if self.on_unreachable not in ("skip", "hold"):
            raise BadInputError(f"--on-unreachable must be skip or hold, not {self.on_unreachable!r}")
        if self.error_limit < 0:
            raise BadInputError("the error limit must be >= 0")
        return self

    @property
    def window(self) -> float:
        return self.window_seconds or max(2 * self.interval_seconds, 1.0)


def new_rollout(
    fleet: Fleet,
    fleet_path: str,
    service: str,
    image: str,
    *,
    baseline: ImagePins,
    settings: Settings,
    deployer: Deployer,
    prometheus_url: str,
    first_region: str | None = None,
) -> RolloutState:
    """A rollout ready to run (not yet saved nor locked)."""
    steps = plan_steps(fleet, service, first_region)
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
    now = time.time()
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dt%H%M%Sz")
    rollout_id = f"{service.replace('_', '-')}-{stamp}-{secrets.token_hex(2)}"
    return RolloutState(
        id=rollout_id,
        service=service,
        image=image,
        fleet=fleet_path,
        settings={**vars(settings), "window_seconds": settings.window},
        deployer=deployer.config(),
        prometheus_url=prometheus_url,
        regions=list(dict.fromkeys(s.region for s in steps)),
        steps=steps,
        baseline=baseline.to_json(),
        applied=baseline.to_json(),
        created=now,
        updated=now,
    )


def analyzer_for(state: RolloutState, prom: PrometheusClient) -> Analyzer:
    """The analysis of a rollout: its service's metrics against the KPIs of the fleet it was started with."""
    fleet = load_fleet(state.fleet).fleet
    metric_service = METRIC_SERVICE[state.service]
    return Analyzer(
        prom,
        metric_service,
        Thresholds.from_fleet(fleet, metric_service),
        window_seconds=float(state.settings["window_seconds"]),
    )


def settings_of(state: RolloutState) -> Settings:
    return Settings(**state.settings)


class RolloutEngine:
    def __init__(
        self,
        store: StateStore,
        state: RolloutState,
        deployer: Deployer,
        analyzer: Analyzer,
        *,
        on_event: EventSink | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.state = state
        self.deployer = deployer
        self.analyzer = analyzer
        self.settings = settings_of(state)
        self._on_event = on_event
        self._sleep = sleep

    # --- bookkeeping -------------------------------------------------------------------------

    def event(self, kind: str, message: str, **detail: Any) -> None:
        s = self.state
        s.events = [*s.events[-(MAX_EVENTS - 1) :], {"at": time.time(), "kind": kind, "message": message, **detail}]
        if self._on_event is not None:
            self._on_event(kind, s, {"message": message, **detail})

    def save(self) -> None:
        self.state.updated = time.time()
        self.store.save(self.state)

    # --- transitions -------------------------------------------------------------------------

    def start(self) -> RolloutState:
        """Lock the regions, record the rollout, run it."""
        self.store.acquire(self.state.id, self.state.regions)
        try:
            self.event("started", f"rollout {self.state.id}: {self.state.service} -> {self.state.image}")
            self.save()
        except BaseException:
            self.store.release(self.state)
            raise
        return self.run()

    def run(self) -> RolloutState:
        s = self.state
        while not s.terminal and s.phase != "paused":
            self._tick()
        if s.terminal:
            self.store.release(s)
            self.store.clear_abort(s.id)
        return s

    def _tick(self) -> None:
        s = self.state
        if s.pending is not None:
            self._apply_pending()
            return
        if s.phase == "progressing" and self.store.abort_requested(s.id):
            self._back("aborting", "operator", "aborted by the operator")
            return
        if s.phase in ("rolling_back", "aborting"):
            self._transition(ImagePins.from_json(s.baseline), s.phase)
            return
        if s.step >= len(s.steps):
            nodes = canary_nodes(s.steps, len(s.steps) - 1)
            final = promoted_pins(ImagePins.from_json(s.baseline), s.service, s.image, nodes)
            self._transition(final, "promote")
            return
        step = s.steps[s.step]
        if step.status == "pending":
            self._start_step()
        elif step.status == "analyzing":
            self._analyze_once()
        else:  # passed or skipped
            s.step += 1
            self.save()

    def _transition(self, pins: ImagePins, purpose: str) -> None:
        self.state.pending = {"purpose": purpose, "step": self.state.step, "pins": pins.to_json()}
        self.save()  # intent first: a crash from here on re-applies these pins on resume
        self._apply_pending()

    def _apply_pending(self) -> None:
        s = self.state
        assert s.pending is not None
        purpose = s.pending["purpose"]
        pins = ImagePins.from_json(s.pending["pins"])
        previous = ImagePins.from_json(s.applied)
        try:
            self.deployer.apply(pins, previous)
        except XzctlError as exc:
            if purpose in ("rolling_back", "aborting"):
                self.event("deploy-failed", f"restoring the previous images failed: {exc.message}")
                self.save()
                raise  # nothing safer to do than to stop: resume retries the restore
            # some nodes may already run the new pins: forget what is applied, so the restore sends everything
            s.pending, s.applied = None, {}
            self._back("rolling_back", "deploy_failed", f"deploy failed ({purpose}): {exc.message}")
            return
        s.applied = pins.to_json()
        s.pending = None
        if purpose == "step":
            step = s.steps[s.step]
            step.status, step.successes = "analyzing", 0
            self.event("applied", f"step {s.step + 1}/{len(s.steps)} {step.name}: canary on {', '.join(step.nodes)}")
        elif purpose == "promote":
            s.phase = "promoted"
            self.event("promoted", f"{s.image} is stable on {', '.join(canary_nodes(s.steps, len(s.steps) - 1))}")
        else:
            s.phase = "rolled_back" if purpose == "rolling_back" else "aborted"
            self.event(s.phase, f"previous images restored on every node: {s.reason}")
        self.save()

    def _back(self, phase: str, cause: str, reason: str) -> None:
        """Decide to restore the baseline (recorded before it is applied)."""
        s = self.state
        s.phase, s.cause, s.reason = phase, cause, reason
        self.event(phase.replace("_", "-"), reason)
        self.save()

    def _pause(self, cause: str, reason: str) -> None:
        s = self.state
        s.phase, s.cause, s.reason = "paused", cause, reason
        self.event("paused", reason)
        self.save()

    # --- steps -------------------------------------------------------------------------------

    def _start_step(self) -> None:
        s = self.state
        step = s.steps[s.step]
        try:
            down = self.analyzer.unreachable(step.nodes)
        except UnknownStateError as exc:
            self._record(Measurement(s.step, time.time(), ERROR, f"cannot tell which nodes are reachable: {exc}"))
            if s.phase == "progressing":
                self._wait()
            return
        if down and self.settings.on_unreachable == "hold":
            self._pause("hold", f"edge node(s) {', '.join(down)} unreachable; holding (resume when back, or abort)")
            return
        for node in down:
            s.skipped_nodes[node] = f"unreachable at step {s.step + 1}"
            self.event("skipped", f"edge node {node} is unreachable: skipped, it keeps its current image", node=node)
        step.nodes = [n for n in step.nodes if n not in down]
        if not step.nodes and s.step == 0 and len(s.steps) > 1 and s.steps[1].region == step.region:
            # the single-node canary must stay a single node: take the next node of the region instead
            nxt = s.steps[1]
            live = [n for n in nxt.nodes if n not in s.skipped_nodes]
            if live:
                nxt.nodes.remove(live[0])
                step.nodes = [live[0]]
                step.name = f"canary node {live[0]}"
                if not nxt.nodes:
                    nxt.status = "skipped"
                self.save()
                return  # re-check the replacement's reachability on the next tick
        if not step.nodes:
            step.status = "skipped"
            self.save()
            return
        pins = step_pins(ImagePins.from_json(s.baseline), s.service, s.image, canary_nodes(s.steps, s.step))
        self._transition(pins, "step")

    def _wait(self) -> bool:
        """Sleep one interval; False when an abort was requested meanwhile."""
        deadline = time.monotonic() + self.settings.interval_seconds
        for _ in range(int(self.settings.interval_seconds / WAIT_SLICE_SECONDS) + 2):
            if self.store.abort_requested(self.state.id):
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._sleep(min(WAIT_SLICE_SECONDS, left))
        return True

    def _record(self, m: Measurement) -> None:
        s = self.state
        s.analysis.append(m)
        if m.result == ERROR:
            s.consecutive_errors += 1
            if s.consecutive_errors > self.settings.error_limit:
                self.event("analysis", m.reason, result=m.result, step=m.step, metrics=m.metrics)
                self._back(
                    "aborting",
                    "missing_data",
                    f"no verdict for {s.consecutive_errors} consecutive measurements ({m.reason})",
                )
                return
        else:
            s.consecutive_errors = 0
        self.event("analysis", m.reason, result=m.result, step=m.step, metrics=m.metrics)
        self.save()

    def _analyze_once(self) -> None:
        s = self.state
        if not self._wait():
            return  # the next tick sees the abort request
        step = s.steps[s.step]
        m = self.analyzer.measure(s.step, canary_nodes(s.steps, s.step))
        self._record(m)
        if m.result == SUCCESS:
            step.successes += 1
            if step.successes >= self.settings.checks:
                step.status = "passed"
                self.event("passed", f"step {s.step + 1}/{len(s.steps)} {step.name} passed {step.successes} checks")
            self.save()
        elif m.result == FAILURE:
            self._back("rolling_back", "analysis_failed", f"analysis failed at step {s.step + 1}: {m.reason}")
        elif m.result == INCONCLUSIVE:
            self._pause("inconclusive", f"inconclusive at step {s.step + 1}: {m.reason}; promote or abort")

    # --- operator actions --------------------------------------------------------------------

    def resume(self) -> RolloutState:
        """Carry on after a crash or a hold. Analysis of the current step starts over (old results are stale)."""
        s = self.state
        if s.terminal:
            raise BadInputError(f"rollout {s.id} is already {s.phase}")
        if s.phase == "paused" and s.cause == "inconclusive":
            raise BadInputError(
                f"rollout {s.id} paused on an inconclusive analysis: {s.reason}",
                hint=f"xzctl rollout promote {s.id} or xzctl rollout abort {s.id}",
            )
        self.store.take_over(s)
        if s.phase == "paused":
            s.phase, s.cause, s.reason = "progressing", "", ""
        if s.step < len(s.steps) and s.steps[s.step].status == "analyzing":
            s.steps[s.step].successes = 0
        s.consecutive_errors = 0
        self.event("resumed", f"resumed by pid {os.getpid()}")
        self.save()
        return self.run()

    def promote(self, *, full: bool = False) -> RolloutState:
        """Accept the step an inconclusive analysis paused on and carry on with the next steps; `full` skips
        the remaining steps' analysis and promotes the image on every planned node now."""
        s = self.state
        if s.phase != "paused" or s.cause != "inconclusive":
            raise BadInputError(
                f"rollout {s.id} is {s.phase}{f' ({s.cause})' if s.cause else ''}, not paused on an inconclusive analysis",
                hint="promote accepts an inconclusive step; a held rollout resumes with: xzctl rollout resume",
            )
        self.store.take_over(s)
        accepted = s.steps[s.step :] if full else [s.steps[s.step]]
        for step in accepted:
            step.status = "passed"
        s.phase, s.cause, s.reason = "progressing", "", ""
        names = ", ".join(step.name for step in accepted)
        self.event("promoted-step", f"accepted by the operator without analysis: {names}")
        self.save()
        return self.run()

    def abort(self, reason: str = "aborted by the operator") -> RolloutState:
        """Restore the previous images everywhere (the caller made sure no live process drives it)."""
        s = self.state
        if s.terminal:
            raise BadInputError(f"rollout {s.id} is already {s.phase}")
        self.store.take_over(s)
        if s.phase not in ("rolling_back", "aborting"):
            self._back("aborting", "operator", reason)
        return self.run()


def summarize(store: StateStore, state: RolloutState, *, analyses: int = 10) -> dict[str, Any]:
    """The rollout as status shows it (and `--output json` prints): phase, steps, last analysis results."""
    driver = store.driver(state) if not state.terminal else None
    data: dict[str, Any] = {
        "id": state.id,
        "service": state.service,
        "image": state.image,
        "phase": state.phase,
        "cause": state.cause,
        "reason": state.reason,
        "step": min(state.step + 1, len(state.steps)),
        "steps": [
            {"name": s.name, "region": s.region, "nodes": s.nodes, "status": s.status, "successes": s.successes}
            for s in state.steps
        ],
        "skipped_nodes": state.skipped_nodes,
        "canary_nodes": canary_nodes(state.steps, min(state.step, len(state.steps) - 1)),
        "driver_pid": driver.pid if driver else None,
        "interrupted": not state.terminal and state.phase != "paused" and driver is None,
        "pending_deploy": state.pending["purpose"] if state.pending else None,
        "settings": state.settings,
        "deployer": state.deployer,
        "analysis": [vars(m) for m in state.analysis[-analyses:]],
        "created": state.created,
        "updated": state.updated,
    }
    return data
