"""Node-class capacity profiles: how many devices one node of a class carries, measured, not assumed.

`xzctl loadtest sweep` raises concurrent devices step by step on one real node at a realistic turn rate and writes
a profile: the hardware, images, ASR path and server processes it measured, the date, the curve (one point per
step) and the knee (the most devices whose first-audio p95 stayed under the KPI with failures under the limit).
A fleet spec names a profile per node class (`capacity.measured: FILE`, relative to the spec) and the plan, the
capacity report and the failover check read its devices per node.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xzctl.errors import BadInputError, SpecProblem

if TYPE_CHECKING:
    from xzctl.spec.models import Fleet

MAX_PROFILE_BYTES = 1024 * 1024
MAX_POINTS = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CurvePoint(_Strict):
    """One step of a sweep: that many devices for the step's duration."""

    devices: Annotated[int, Field(ge=1)]
    turns: Annotated[int, Field(ge=0)]
    failed: Annotated[int, Field(ge=0)]
    first_audio_p50: float | None
    first_audio_p95: float | None
    stt_p95: float | None
    turn_p95: float | None
    failures: dict[str, int] = Field(default_factory=dict, description="failed turns by kind")

    @property
    def failed_ratio(self) -> float:
        return self.failed / self.turns if self.turns else 1.0  # no turn answered at all is no capacity

    def within(self, kpi_seconds: float, max_failed_ratio: float) -> bool:
        return (
            self.turns > 0
            and self.first_audio_p95 is not None
            and self.first_audio_p95 <= kpi_seconds
            and self.failed_ratio <= max_failed_ratio
        )


class Hardware(_Strict):
    cpu_cores: Annotated[int, Field(ge=1)]
    cpu_model: str = Field(max_length=200)
    memory_gb: float = Field(ge=0)
    gpus: str = Field(default="none", max_length=200)


class CapacityProfile(_Strict):
    node_class: str = Field(max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
    measured_at: str = Field(max_length=40, description="ISO date and time of the sweep")
    hardware: Hardware
    images: dict[str, str] = Field(
        description="what served the turns: service -> repository:version@digest (or why it is no release)"
    )
    asr_path: str = Field(max_length=200, description="the ASR the server used (provider and model)")
    server_processes: Annotated[int, Field(ge=1)]
    turn_every_seconds: float = Field(gt=0)
    step_seconds: float = Field(gt=0)
    kpi_first_audio_seconds: float = Field(gt=0)
    max_failed_ratio: float = Field(ge=0, le=1)
    curve: list[CurvePoint] = Field(min_length=1, max_length=MAX_POINTS)
    devices_per_node: Annotated[int, Field(ge=0)] = Field(description="the knee: 0 when not even the first step held")
    command: str = Field(max_length=2000, description="the command that measured it (to measure again)")
    conditions: str = Field(default="", max_length=1000, description="what else ran on the node during the sweep")

    def first_audio_median(self, devices: float) -> float | None:
        """The measured median first audio at `devices` concurrent devices: linear between the curve's steps, the
        last slope beyond them (a node past its last step only gets slower), the first step below it."""
        points = sorted((p.devices, p.first_audio_p50) for p in self.curve if p.first_audio_p50 is not None)
        if not points:
            return None
        if len(points) == 1 or devices <= points[0][0]:
            return points[0][1]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            if devices <= x1:
                return y0 + (y1 - y0) * (devices - x0) / (x1 - x0)
        (x0, y0), (x1, y1) = points[-2], points[-1]
        return max(y1, y1 + (y1 - y0) * (devices - x1) / (x1 - x0))


def knee(curve: list[CurvePoint], kpi_seconds: float, max_failed_ratio: float) -> int:
    """The most devices of the steps that held the KPI, counting only steps below the first that did not: past a
    breach the node is overloaded, and a lucky larger step is noise, not capacity."""
    best = 0
    for point in sorted(curve, key=lambda p: p.devices):
        if not point.within(kpi_seconds, max_failed_ratio):
            break
        best = point.devices
    return best


def load_capacity_profile(path: Path) -> CapacityProfile:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)
    except OSError as exc:
        raise BadInputError(
            f"capacity profile {path}: {exc.strerror}", hint="measure one: xzctl loadtest sweep"
        ) from None
    if len(data) > MAX_PROFILE_BYTES:
        raise BadInputError(f"capacity profile {path}: larger than {MAX_PROFILE_BYTES // 1024} KiB")
    try:
        profile = CapacityProfile.model_validate(yaml.safe_load(data))
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).splitlines()[:3]
        raise BadInputError(f"capacity profile {path}: not a profile ({' '.join(first)})") from None
    if profile.devices_per_node != knee(profile.curve, profile.kpi_first_audio_seconds, profile.max_failed_ratio):
        raise BadInputError(
            f"capacity profile {path}: devices_per_node {profile.devices_per_node} is not the knee of its curve"
        )
    return profile


def attach_measured(fleet: Fleet, spec_path: Path, lines: dict[tuple[str | int, ...], int]) -> list[SpecProblem]:
    """Read each profile the spec names (once per file) into its nodes' capacity; warn where max_devices is more
    than measured. A profile that cannot be read is an error: the plan must not silently fall back to the guess."""
    from xzctl.spec.load import format_path

    problems: list[SpecProblem] = []
    read: dict[str, CapacityProfile | None] = {}
    warned: set[tuple[str, int]] = set()
    for region_name, region in fleet.regions.items():
        for i, node in enumerate(region.edge_nodes):
            ref = node.capacity.measured
            if ref is None:
                continue
            at = ("regions", region_name, "edge_nodes", i, "capacity", "measured")
            path = spec_path.parent / ref
            if ref not in read:
                try:
                    read[ref] = load_capacity_profile(path)
                except BadInputError as exc:
                    read[ref] = None
                    fix = "measure the class: xzctl loadtest sweep --node-class NAME --out FILE"
                    problems.append(SpecProblem(str(spec_path), format_path(at), exc.message, fix, lines.get(at)))
            profile = read[ref]
            if profile is None:
                continue
            node.capacity._measured = (profile, str(path))
            if node.capacity.max_devices > profile.devices_per_node and (ref, node.capacity.max_devices) not in warned:
                warned.add((ref, node.capacity.max_devices))
                problems.append(
                    SpecProblem(
                        str(spec_path),
                        format_path(at),
                        f"max_devices {node.capacity.max_devices} is more than the {profile.devices_per_node} devices "
                        f"per node measured for class {profile.node_class} ({ref}, {profile.measured_at})",
                        f"set max_devices to {profile.devices_per_node} or add server processes and measure again",
                        lines.get(at),
                        severity="warning",
                    )
                )
    return problems


def profile_document(profile: CapacityProfile) -> str:
    header = (
        f"# Capacity of one {profile.node_class} node, measured by `xzctl loadtest sweep` on {profile.measured_at}.\n"
        "# Measure again with the command below on a node of the class; never edit the curve by hand.\n"
    )
    return header + yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
