"""Capacity report: per edge node, region and fleet, can it carry its devices within the KPIs, and how many more.

Headroom model (documented in docs and the report): every resource grows linearly with devices at the
node's current cost per device (CPU, memory, GPU utilization / active devices), and p95 latency grows
with the node's busiest compute resource rho like a single queue, p95 = base / (1 - rho). The headroom
is how many devices can still be added before the first limit (max_devices, a KPI cap, a latency KPI)
is reached, and that limit is named.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from xzctl.checks.snapshot import FleetSnapshot, NodeMetrics, Readings
from xzctl.spec import EdgeNode, Fleet
from xzctl.status import Status, worst

DAY = 86400.0


@dataclass(frozen=True)
class CapacityThresholds:
    """When an ok node is still worth a warning (never a failure)."""

    warn_headroom_ratio: float = 0.10  # headroom below this share of max_devices
    warn_days_until_full: float = 30.0
    min_trend_days: int = 3  # daily peaks needed before a trend is shown: fewer cannot tell growth from a busy day
    trend_sigmas: float = 3.0  # growth is shown only this many standard errors above zero, else it is none


@dataclass(frozen=True)
class Limit:
    """One limit of a node: where it stands now and how many devices the node carries when it is reached."""

    name: str  # max_devices | measured | cpu | memory | gpu | latency:<service>
    value: float  # devices, a utilization fraction, or p95 seconds
    cap: float
    devices_at_cap: int


@dataclass
class Capacity(Readings):
    """Capacity of one node, one region or the fleet."""

    name: str
    status: Status
    reasons: list[str]
    devices: int | None
    max_devices: int
    headroom: int | None  # devices that can be added before `limit` is reached (negative: over it)
    limit: str | None
    growth_per_day: float | None = None  # devices per day, from the history's linear trend
    days_until_full: float | None = None
    limits: list[Limit] = field(default_factory=list)
    region: str = ""  # an edge node's region; empty for a region or the fleet
    measured: tuple[int, str] | None = None  # an edge node's measured devices per node and its profile

    @property
    def capacity_devices(self) -> int | None:
        return None if self.devices is None or self.headroom is None else self.devices + self.headroom

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **({"region": self.region} if self.region else {}),
            "status": str(self.status),
            "reasons": self.reasons,
            "devices": self.devices,
            "max_devices": self.max_devices,
            "headroom": self.headroom,
            "limit": self.limit,
            "cpu": _r(self.cpu),
            "memory": _r(self.memory),
            "gpu": _r(self.gpu),
            "latency_p95_ms": {s: _r(v * 1000, 1) for s, v in self.latency_p95.items()},
            "error_ratio": _r(self.error_ratio, 5),
            "queue": _r(self.queue, 1),
            "cache_hit": _r(self.cache_hit),
            "growth_per_day": _r(self.growth_per_day, 2),
            "days_until_full": _r(self.days_until_full, 1),
            "devices_at_limit": {lim.name: lim.devices_at_cap for lim in self.limits},
            "measured_devices_per_node": self.measured[0] if self.measured else None,
            "measured_source": self.measured[1] if self.measured else None,
        }


@dataclass
class CapacityReport:
    status: Status
    fleet: Capacity
    regions: dict[str, Capacity]
    nodes: dict[str, Capacity]
    queries: int
    taken_at: float
    prometheus_url: str

    def summary(self) -> str:
        bad = [n for n in self.nodes.values() if n.status in (Status.CRIT, Status.UNKNOWN)]
        known = self.fleet.devices is not None and self.fleet.headroom is not None
        numbers = f"{self.fleet.devices} devices, headroom {self.fleet.headroom}" if known else "devices not known"
        head = f"capacity {self.status}: {numbers}"
        if not bad:
            return head
        worst_first = sorted(bad, key=lambda n: n.status is not Status.CRIT)
        detail = "; ".join(f"{n.name} {n.status}: {n.reasons[0]}" for n in worst_first[:3])
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        return f"{head}; {detail}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": "capacity",
            "status": str(self.status),
            "summary": self.summary(),
            "prometheus": self.prometheus_url,
            "taken_at": self.taken_at,
            "queries": self.queries,
            "fleet": self.fleet.to_dict(),
            "regions": [r.to_dict() for r in self.regions.values()],
            "nodes": [n.to_dict() for n in self.nodes.values()],
        }


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def node_limits(node: EdgeNode, m: NodeMetrics, fleet: Fleet) -> list[Limit]:
    """Every limit of a node with a measurable current load, from the linear per-device model."""
    assert m.devices is not None
    devices = m.devices
    eff = fleet.kpis.efficiency
    limits = [Limit("max_devices", devices, node.capacity.max_devices, node.capacity.max_devices)]
    if node.capacity.measured_devices is not None:  # what a node of its class carried under the KPI, measured
        measured = node.capacity.measured_devices[0]
        limits.append(Limit("measured", devices, measured, measured))
    resources = [("cpu", m.cpu, eff.cpu_percent), ("memory", m.memory, eff.memory_percent)]
    if node.capacity.gpu.count > 0:
        resources.append(("gpu", m.gpu, eff.gpu_percent))
    for name, used, cap_percent in resources:
        cap = cap_percent / 100
        if used is not None and used > 0 and devices > 0:
            limits.append(Limit(name, used, cap, math.floor(devices * cap / used + 1e-9)))
    # Latency: base = p95 x (1 - rho) at the busiest compute resource; the KPI is hit at rho* = 1 - base/KPI.
    gpu = (m.gpu or 0.0) if node.capacity.gpu.count > 0 else 0.0
    rho = max(m.cpu or 0.0, gpu)
    if devices > 0 and rho > 0:
        rho_now = min(rho, 0.99)
        for service, kpi_ms in fleet.kpis.latency.by_service().items():
            p95 = m.latency_p95.get(service)
            if p95 is None or not math.isfinite(p95):
                continue
            kpi = kpi_ms / 1000
            rho_at_kpi = max(0.0, 1 - p95 * (1 - rho_now) / kpi)
            limits.append(Limit(f"latency:{service}", p95, kpi, math.floor(devices * rho_at_kpi / rho_now + 1e-9)))
    return limits


def daily_peaks(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The busiest reading of each whole day, days counted back from the newest point (a partial day is left out).

    A line through every reading follows the daily ramp (a morning says +75 devices/day); through daily peaks it
    follows the fleet."""
    if not points:
        return []
    end = points[-1][0]
    whole_days = int((end - points[0][0]) // DAY)
    peaks: dict[int, tuple[float, float]] = {}
    for t, v in points:
        day = int((end - t) // DAY)
        if day < whole_days and (day not in peaks or v > peaks[day][1]):
            peaks[day] = (end - day * DAY, v)
    return sorted(peaks.values())


def fit_growth(points: list[tuple[float, float]], th: CapacityThresholds) -> float | None:
    """Devices per day of the least-squares line through the daily peaks; None with too few whole days, 0.0 when
    the slope is within the peaks' noise (a fleet without growth is never "full in" some days)."""
    peaks = daily_peaks(points)
    if len(peaks) < th.min_trend_days:
        return None
    days = [t / DAY for t, _ in peaks]
    values = [v for _, v in peaks]
    if len(set(values)) == 1:
        return 0.0
    slope, intercept = statistics.linear_regression(days, values)
    residuals = [v - (intercept + slope * d) for d, v in zip(days, values, strict=True)]
    spread = sum((d - statistics.fmean(days)) ** 2 for d in days)
    stderr = math.sqrt(sum(r * r for r in residuals) / (len(peaks) - 2) / spread) if len(peaks) > 2 else math.inf
    return slope if slope > th.trend_sigmas * stderr else 0.0


def _days_until_full(growth: float | None, devices: int, capacity: int | None) -> float | None:
    # Already at or over the limit: the crit reason says so; "full in 0.0 days" would say it twice.
    if growth is None or capacity is None or growth <= 0 or capacity <= devices:
        return None
    return (capacity - devices) / growth


def node_capacity(node: EdgeNode, m: NodeMetrics, fleet: Fleet, th: CapacityThresholds) -> Capacity:
    max_devices = node.capacity.max_devices
    if not m.known or m.devices is None:
        return Capacity(
            node.id,
            Status.UNKNOWN,
            list(m.problems),
            None,
            max_devices,
            None,
            None,
            region=node.region,
            measured=node.capacity.measured_devices,
        )
    devices = round(m.devices)
    limits = node_limits(node, m, fleet)
    first = min(limits, key=lambda lim: lim.devices_at_cap)
    growth = fit_growth(m.history, th)
    cap = Capacity(
        name=node.id,
        status=Status.OK,
        reasons=[],
        devices=devices,
        max_devices=max_devices,
        headroom=first.devices_at_cap - devices,
        limit=first.name,
        cpu=m.cpu,
        memory=m.memory,
        gpu=m.gpu if node.capacity.gpu.count > 0 else None,
        latency_p95=dict(m.latency_p95),
        error_ratio=m.error_ratio,
        queue=m.queue,
        cache_hit=m.cache_hit,
        growth_per_day=growth,
        limits=limits,
        region=node.region,
        measured=node.capacity.measured_devices,
    )
    cap.days_until_full = _days_until_full(growth, devices, cap.capacity_devices)
    _judge(cap, fleet, th)
    return cap


def _judge(cap: Capacity, fleet: Fleet, th: CapacityThresholds) -> None:
    """Set status and reasons: crit for a broken cap or KPI, warn for what will break soon."""
    crit: list[str] = []
    warn: list[str] = []
    for lim in cap.limits:
        if lim.value > lim.cap:
            crit.append(_over(lim))
    kpis = fleet.kpis
    if cap.error_ratio is not None and cap.error_ratio > kpis.reliability.error_rate_percent / 100:
        crit.append(f"error rate {cap.error_ratio:.3%} > KPI {kpis.reliability.error_rate_percent:g}%")
    if cap.headroom is not None and 0 <= cap.headroom < th.warn_headroom_ratio * cap.max_devices:
        warn.append(f"headroom {cap.headroom} devices (< {th.warn_headroom_ratio:.0%} of max), first limit {cap.limit}")
    if cap.cache_hit is not None and cap.cache_hit < kpis.efficiency.cache_hit_percent / 100:
        warn.append(f"cache hit {cap.cache_hit:.1%} < KPI {kpis.efficiency.cache_hit_percent:g}%")
    max_queue = fleet.alerts.queue_backlog.max_queue
    if cap.queue is not None and cap.queue > max_queue:
        warn.append(f"queue {cap.queue:.0f} > {max_queue}")
    if cap.days_until_full is not None and cap.days_until_full < th.warn_days_until_full:
        warn.append(f"full in {cap.days_until_full:.1f} days at +{cap.growth_per_day:.1f} devices/day")
    cap.reasons = crit + warn
    cap.status = Status.CRIT if crit else Status.WARN if warn else Status.OK


def _over(lim: Limit) -> str:
    if lim.name == "max_devices":
        return f"{lim.value:.0f} devices > max_devices {lim.cap:.0f}"
    if lim.name == "measured":
        return f"{lim.value:.0f} devices > {lim.cap:.0f} measured per node of its class"
    if lim.name.startswith("latency:"):
        return f"p95 {lim.name.split(':', 1)[1]} {lim.value * 1000:.0f} ms > KPI {lim.cap * 1000:.0f} ms"
    return f"{lim.name} {lim.value:.1%} > KPI {lim.cap:.0%}"


def _group(
    name: str,
    members: list[Capacity],
    metrics: list[NodeMetrics],
    *,
    th: CapacityThresholds,
) -> Capacity:
    """A region or the fleet: sums and means of its nodes; unknown as soon as one node is unknown.

    Its p95 per service is its slowest node's: a pooled quantile would hide one slow node.
    """
    max_devices = sum(m.max_devices for m in members)
    known = [m for m in members if m.status is not Status.UNKNOWN]
    unknown = [m.name for m in members if m.status is Status.UNKNOWN]

    latency: dict[str, float] = {}
    for m in known:
        for service, p95 in m.latency_p95.items():
            if math.isfinite(p95):
                latency[service] = max(p95, latency.get(service, 0.0))

    def mean(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.fmean(present) if present else None

    group = Capacity(
        name=name,
        status=Status.OK,
        reasons=[],
        devices=None if unknown else sum(m.devices or 0 for m in known),
        max_devices=max_devices,
        headroom=None if unknown else sum(m.headroom or 0 for m in known),
        limit=min(known, key=lambda m: m.headroom or 0).limit if known and not unknown else None,
        cpu=mean([m.cpu for m in known]),
        memory=mean([m.memory for m in known]),
        gpu=mean([m.gpu for m in known]),
        latency_p95=latency,
        error_ratio=mean([m.error_ratio for m in known]),
        queue=max((m.queue for m in known if m.queue is not None), default=None),
        cache_hit=mean([m.cache_hit for m in known]),
    )
    if not unknown:
        summed: dict[float, float] = {}
        for nm in metrics:
            for t, v in nm.history:
                summed[t] = summed.get(t, 0.0) + v
        group.growth_per_day = fit_growth(sorted(summed.items()), th)
        group.days_until_full = _days_until_full(group.growth_per_day, group.devices or 0, group.capacity_devices)
    # Which members are not ok, worst first, by name only: their own rows say why, and saying it again per
    # region and fleet turned 12 rows into 70 lines.
    group.reasons = []
    for status in (Status.CRIT, Status.UNKNOWN, Status.WARN):
        names = [m.name for m in members if m.status is status]
        more = f" (+{len(names) - 5} more)" if len(names) > 5 else ""
        label = "unknown (no trustworthy metrics)" if status is Status.UNKNOWN else str(status)
        if names:
            group.reasons.append(f"{label}: {', '.join(names[:5])}{more}")
    status = worst(m.status for m in members)
    group.status = status
    if status is Status.OK and group.days_until_full is not None and group.days_until_full < th.warn_days_until_full:
        group.status = Status.WARN
        group.reasons.append(f"full in {group.days_until_full:.1f} days")
    return group


def capacity_report(snapshot: FleetSnapshot, thresholds: CapacityThresholds = CapacityThresholds()) -> CapacityReport:
    fleet = snapshot.fleet
    nodes = {n.id: node_capacity(n, snapshot.nodes[n.id], fleet, thresholds) for n in fleet.edge_nodes()}
    regions = {}
    for region_name, region in fleet.regions.items():
        ids = [n.id for n in region.edge_nodes]
        regions[region_name] = _group(
            region_name,
            [nodes[i] for i in ids],
            [snapshot.nodes[i] for i in ids],
            th=thresholds,
        )
    total = _group(
        fleet.metadata.name,
        list(nodes.values()),
        list(snapshot.nodes.values()),
        th=thresholds,
    )
    total.status = worst([total.status, *(r.status for r in regions.values())])
    return CapacityReport(
        status=total.status,
        fleet=total,
        regions=regions,
        nodes=nodes,
        queries=snapshot.queries,
        taken_at=snapshot.taken_at,
        prometheus_url=snapshot.prometheus_url,
    )
