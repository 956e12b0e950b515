"""The capacity sweep: more concurrent devices step by step on one node until the turns miss the KPI.

Each step is a load test of its own (the same engine, `run_step`), at one turn per device per `turn_every`. The
sweep stops `past_knee` steps after the first step that misses the KPI (first-audio p95 over it, or failures over
the limit): past the knee a node only gets slower, and the sweep stays bounded in time.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from xzctl.errors import BadInputError
from xzctl.loadtest.settings import LoadSettings
from xzctl.loadtest.summary import FIRST_AUDIO, STT, TURN, Snapshot
from xzctl.spec.measured import CapacityProfile, CurvePoint, Hardware, knee

MAX_STEPS = 20


@dataclass(frozen=True)
class SweepPlan:
    steps: tuple[int, ...]
    step_seconds: float
    kpi_seconds: float = 3.0  # the seed's end-to-end KPI
    max_failed_ratio: float = 0.001  # the seed's error KPI (0.1 %)
    past_knee: int = 1  # steps measured after the first that misses the KPI: the curve's shape past the knee


def parse_steps(text: str) -> tuple[int, ...]:
    """`1,2,4,8`: rising device counts."""
    if not re.fullmatch(r"\d+(,\d+)*", text.strip()):
        raise BadInputError(f"--steps {text!r}: give rising device counts, e.g. 1,2,4,8")
    steps = tuple(int(s) for s in text.split(","))
    if steps[0] < 1 or any(b <= a for a, b in itertools.pairwise(steps)) or len(steps) > MAX_STEPS:
        raise BadInputError(f"--steps {text!r}: give 1 to {MAX_STEPS} rising device counts from 1 up, e.g. 1,2,4,8")
    return steps


def point(snap: Snapshot, devices: int) -> CurvePoint:
    return CurvePoint(
        devices=devices,
        turns=snap.turns,
        failed=snap.failed,
        first_audio_p50=snap.timing(FIRST_AUDIO).p50,
        first_audio_p95=snap.timing(FIRST_AUDIO).p95,
        stt_p95=snap.timing(STT).p95,
        turn_p95=snap.timing(TURN).p95,
        failures=dict(snap.failures),
    )


def sweep(
    base: LoadSettings,
    plan: SweepPlan,
    run_step: Callable[[LoadSettings], Snapshot],
    on_step: Callable[[CurvePoint], None] | None = None,
) -> tuple[list[CurvePoint], bool]:
    """The curve, step by step until `past_knee` steps after the first that misses the KPI; and whether Ctrl-C cut
    it short."""
    curve: list[CurvePoint] = []
    missed = 0
    for devices in plan.steps:
        snap = run_step(replace(base, devices=devices, duration=plan.step_seconds, ramp=0.0))
        if snap.interrupted:
            return curve, True  # a cut step is not a measurement
        curve.append(point(snap, devices))
        if on_step is not None:
            on_step(curve[-1])
        if missed or not curve[-1].within(plan.kpi_seconds, plan.max_failed_ratio):
            missed += 1
            if missed > plan.past_knee:
                break
    return curve, False


@dataclass(frozen=True)
class Measured:
    """What served the turns: it goes into the profile beside the curve."""

    node_class: str
    images: dict[str, str]
    asr_path: str
    server_processes: int
    command: str
    conditions: str = ""


def build_profile(curve: list[CurvePoint], plan: SweepPlan, base: LoadSettings, what: Measured) -> CapacityProfile:
    if not curve:
        raise BadInputError("the sweep measured no step: nothing to record")
    return CapacityProfile(
        node_class=what.node_class,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        hardware=local_hardware(),
        images=what.images,
        asr_path=what.asr_path,
        server_processes=what.server_processes,
        turn_every_seconds=base.turn_every,
        step_seconds=plan.step_seconds,
        kpi_first_audio_seconds=plan.kpi_seconds,
        max_failed_ratio=plan.max_failed_ratio,
        curve=curve,
        devices_per_node=knee(curve, plan.kpi_seconds, plan.max_failed_ratio),
        command=what.command,
        conditions=what.conditions,
    )


def local_hardware(proc: Path = Path("/proc")) -> Hardware:
    """This machine, where the sweep runs the node (the sandbox's real node shares it)."""
    model = "unknown"
    memory_gb = 0.0
    try:
        for line in (proc / "cpuinfo").read_text(errors="replace").splitlines()[:200]:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()[:200]
                break
        for line in (proc / "meminfo").read_text(errors="replace").splitlines()[:5]:
            if line.startswith("MemTotal:"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass  # a machine without /proc: the profile says unknown rather than guessing
    return Hardware(cpu_cores=len(os.sched_getaffinity(0)), cpu_model=model, memory_gb=memory_gb)
