"""Failover check: would the fleet survive losing any one edge node, or any one region?

For each loss, the lost devices are re-placed by `xzctl.spec.failover.place` (the one placement model,
shared with the static plan and the simulator) with live inputs: each node's score is the seed's
load balancer formula (sum of weight x (1 - load) over cpu, memory, gpu, latency and queue, weights
from fleet.load_balancer), each placed device raises the node's loads at its current cost per device,
and a node's KPI capacity is its devices plus its live headroom. Devices placed past a KPI capacity
overload the node; devices that fit nowhere are left without service.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xzctl.checks.capacity import Capacity, CapacityReport
from xzctl.checks.snapshot import FleetSnapshot
from xzctl.errors import BadInputError, UnknownStateError
from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient
from xzctl.spec import Fleet
from xzctl.spec.failover import NodeLoad, place
from xzctl.status import Status, worst


@dataclass(frozen=True)
class Overload:
    node: str
    over_by: int  # devices above the node's KPI capacity after the failover
    limit: str


@dataclass
class FailureVerdict:
    lost: str  # node id or region name
    kind: str  # node | region
    devices: int  # devices to re-place
    status: Status
    outcome: str  # survives | overloads | drops devices | unknown
    placed_same_region: int = 0
    placed_other_regions: int = 0
    placed_on: dict[str, int] = field(default_factory=dict)  # devices added per receiving node, most first
    overloaded: list[Overload] = field(default_factory=list)
    unserved: int = 0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "lost": self.lost,
            "kind": self.kind,
            "devices": self.devices,
            "status": str(self.status),
            "outcome": self.outcome,
            "placed_same_region": self.placed_same_region,
            "placed_other_regions": self.placed_other_regions,
            "placed_on": self.placed_on,
            "overloaded": [vars(o) for o in self.overloaded],
            "unserved": self.unserved,
            "reason": self.reason,
        }


@dataclass
class FailoverReport:
    status: Status
    failures: list[FailureVerdict]
    seconds: float  # time the simulation took

    def summary(self) -> str:
        bad = [f for f in self.failures if f.status is not Status.OK]
        survive = len(self.failures) - len(bad)
        head = f"failover {self.status}: {survive}/{len(self.failures)} single failures survived"
        if not bad:
            return head
        return head + "; " + "; ".join(f"{f.kind} {f.lost}: {f.reason}" for f in bad[:3])

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": "failover",
            "status": str(self.status),
            "summary": self.summary(),
            "simulation_seconds": round(self.seconds, 4),
            "failures": [f.to_dict() for f in self.failures],
        }


def simulate_all(loads: list[NodeLoad], cross_region: dict[str, bool]) -> FailoverReport:
    """Every single-node loss and every single-region loss."""
    started = time.perf_counter()
    by_region: dict[str, list[int]] = {}
    for i, n in enumerate(loads):
        by_region.setdefault(n.region, []).append(i)
    others = {r: [i for i, n in enumerate(loads) if n.region != r] for r in by_region}
    failures: list[FailureVerdict] = []
    for i, n in enumerate(loads):
        cross = cross_region.get(n.region, False)
        failures.append(
            simulate_loss(
                loads, n.node, "node", {i}, cross_region=cross, same=by_region[n.region], other=others[n.region]
            )
        )
    for region, members in by_region.items():
        cross = cross_region.get(region, False)
        failures.append(
            simulate_loss(loads, region, "region", set(members), cross_region=cross, same=[], other=others[region])
        )
    return FailoverReport(worst(f.status for f in failures), failures, time.perf_counter() - started)


def simulate_loss(
    loads: list[NodeLoad],
    name: str,
    kind: str,
    lost: set[int],
    *,
    cross_region: bool,
    same: list[int],
    other: list[int],
) -> FailureVerdict:
    """Lose the nodes at indexes `lost` and re-place their devices: same region (`same`) first, then `other`."""
    devices = sum(loads[i].devices for i in lost)
    unknown = [loads[i].node for i in lost if not loads[i].known]
    if unknown:
        return FailureVerdict(
            name, kind, devices, Status.UNKNOWN, "unknown", reason=f"no trustworthy metrics for {', '.join(unknown)}"
        )
    leavable = sum(loads[i].devices for i in lost if loads[i].failover_enabled) if cross_region else 0
    placement = place(loads, devices, leavable=leavable, same=[i for i in same if i not in lost], other=other)
    placed_same, placed_other = placement.same_region, placement.other_regions
    overloads = []
    for i, n in placement.added.items():
        node = loads[i]
        over = node.devices + n - max(node.kpi_capacity, node.devices)
        if over > 0:
            overloads.append(Overload(node.node, over, node.limit))
    overloads.sort(key=lambda o: (-o.over_by, o.node))
    unserved = placement.unserved
    verdict = FailureVerdict(
        name,
        kind,
        devices,
        Status.OK,
        "survives",
        placed_same,
        placed_other,
        {loads[i].node: n for i, n in sorted(placement.added.items(), key=lambda kv: -kv[1])},
        overloads,
        unserved,
    )
    if unserved:
        verdict.status, verdict.outcome = Status.CRIT, "drops devices"
        verdict.reason = f"{unserved} devices left without service"
    elif overloads:
        verdict.status, verdict.outcome = Status.CRIT, "overloads"
        verdict.reason = "overloads " + ", ".join(f"{o.node} by {o.over_by} devices ({o.limit})" for o in overloads[:5])
        if len(overloads) > 5:
            verdict.reason += f" and {len(overloads) - 5} more nodes"
    else:
        verdict.reason = (
            f"{devices} devices re-placed within KPIs ({placed_same} same region, {placed_other} other regions)"
        )
    return verdict


def node_loads(fleet: Fleet, report: CapacityReport, snapshot: FleetSnapshot) -> list[NodeLoad]:
    """The placement inputs from live metrics: score and per-device score cost of each node."""
    w = fleet.load_balancer.weights
    e2e_kpi = fleet.kpis.latency.end_to_end_ms / 1000
    max_queue = fleet.alerts.queue_backlog.max_queue
    out = []
    for node in fleet.edge_nodes():
        cap: Capacity = report.nodes[node.id]
        m = snapshot.nodes[node.id]
        if cap.status is Status.UNKNOWN or cap.devices is None or cap.headroom is None:
            out.append(
                NodeLoad(node.id, node.region, node.devices, 0, node.capacity.max_devices, 0.0, 0.0, known=False)
            )
            continue
        # A node without GPUs has no GPU capacity to offer: its GPU term counts as fully used.
        gpu = (m.gpu or 0.0) if node.capacity.gpu.count > 0 else 1.0
        latency = (m.latency_p95.get("end_to_end") or 0.0) / e2e_kpi
        queue = (m.queue or 0.0) / max_queue
        score = sum(
            weight * (1 - load)
            for weight, load in (
                (w.cpu, m.cpu or 0.0),
                (w.memory, m.memory or 0.0),
                (w.gpu, gpu),
                (w.latency, latency),
                (w.queue, queue),
            )
        )
        growing = w.cpu * (m.cpu or 0.0) + w.memory * (m.memory or 0.0) + w.latency * latency + w.queue * queue
        if node.capacity.gpu.count > 0:
            growing += w.gpu * gpu
        per_device = growing / cap.devices if cap.devices > 0 else 0.0
        out.append(
            NodeLoad(
                node=node.id,
                region=node.region,
                devices=cap.devices,
                kpi_capacity=max(0, min(cap.devices + cap.headroom, node.capacity.max_devices)),
                max_devices=node.capacity.max_devices,
                score=score,
                score_per_device=per_device,
                limit=cap.limit or "max_devices",
                failover_enabled=node.networking.failover_enabled,
            )
        )
    return out


def failover_check(fleet: Fleet, report: CapacityReport, snapshot: FleetSnapshot) -> FailoverReport:
    cross = {name: region.cross_region_failover for name, region in fleet.regions.items()}
    return simulate_all(node_loads(fleet, report, snapshot), cross)


# --- drill ------------------------------------------------------------------------------------


@dataclass
class DrillResult:
    node: str
    status: Status
    devices_before: int  # fleet's active devices before the stop
    lost_devices: int  # the node's active devices
    expected_back: int  # fleet devices counted as "back": what the simulation says it can carry, less the tolerance
    devices_back: int | None  # fleet's active devices when the measurement ended
    seconds: float | None  # from stop to expected_back served again; None when never reached
    kpi_seconds: int
    reason: str
    # The failover check's verdict for losing this node: the drill's status is never better than it.
    simulated_status: Status = Status.OK
    simulated_unserved: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = dict(vars(self))
        data["status"] = str(self.status)
        data["simulated_status"] = str(self.simulated_status)
        data["seconds"] = None if self.seconds is None else round(self.seconds, 2)
        return data


def drill(
    client: PrometheusClient,
    fleet: Fleet,
    report: CapacityReport,
    failover: FailoverReport,
    node_id: str,
    *,
    stop: Callable[[], None],
    restore: Callable[[], None],
    timeout_seconds: float | None = None,
    poll_seconds: float = 0.5,
    tolerance: float = 0.01,
) -> DrillResult:
    """Stop `node_id` for real (through `stop`), and time until the fleet serves its devices again.

    "Served again" is the fleet's sum of active devices, polled from Prometheus, back to what the
    simulation says it can carry without the node (less `tolerance` of the fleet). The time includes
    Prometheus' scrape delay: it is the failover as monitoring sees it. The node is restored whatever happens.
    """
    cap = report.nodes.get(node_id)
    if cap is None:
        raise BadInputError(f"no edge node {node_id!r} in the fleet spec", hint="see `xzctl capacity report`")
    if cap.devices is None:
        raise UnknownStateError(f"cannot drill {node_id}: its metrics are unknown ({'; '.join(cap.reasons)})")
    verdict = next(f for f in failover.failures if f.kind == "node" and f.lost == node_id)
    kpi = fleet.kpis.reliability.failover_seconds
    bound = timeout_seconds if timeout_seconds is not None else 3 * kpi
    total_query = q.active_devices(by=())
    before = _fleet_devices(client, total_query)
    # Live fleets breathe (sessions open and close every second): within 1 % of the target counts as back.
    expected = before - verdict.unserved - max(1, round(tolerance * before))
    node_query = q.active_devices(filters={"node": node_id})
    started = time.monotonic()
    back: int | None = None
    seconds: float | None = None
    try:
        stop()
        deadline = started + bound
        gone = False
        # Bounded: at most bound / poll_seconds rounds, each a query bounded by the client's timeout.
        while time.monotonic() < deadline:
            if not gone:
                # Until Prometheus has seen the node go, the old total would read as "already back".
                gone = not client.query(node_query)
            else:
                back = _fleet_devices(client, total_query)
                if back >= expected:
                    seconds = time.monotonic() - started
                    break
            time.sleep(poll_seconds)
    finally:
        restore()
    simulated = (verdict.status, verdict.unserved)
    if seconds is None:
        missing = "the node never disappeared from Prometheus" if back is None else f"{expected - back} devices missing"
        reason = f"not back after {bound:g} s: {missing}"
        return DrillResult(node_id, Status.CRIT, before, cap.devices, expected, back, None, kpi, reason, *simulated)
    timely = seconds <= kpi
    placed = cap.devices - verdict.unserved
    reason = f"{placed} devices served elsewhere after {seconds:.1f} s ({'<=' if timely else '>'} KPI {kpi} s)"
    if verdict.status is not Status.OK:
        # The drill times the devices the simulation could place; it does not make the loss survivable.
        reason += f"; the simulation of this loss is {verdict.status}: {verdict.reason}"
    status = worst([Status.OK if timely else Status.CRIT, verdict.status])
    return DrillResult(node_id, status, before, cap.devices, expected, back, seconds, kpi, reason, *simulated)


def _fleet_devices(client: PrometheusClient, promql: str) -> int:
    samples = client.query(promql)
    if not samples or not math.isfinite(samples[0].value):
        raise UnknownStateError(f"no fleet active devices from {client.url} ({promql})")
    return round(samples[0].value)
