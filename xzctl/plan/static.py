"""The static plan: what the fleet spec promises, checked by arithmetic alone (no live metrics).

Each row is one question an operator asks before buying hardware ("does a region survive losing its
largest edge node?", "do the cloud LLM replicas fit the GPU servers?", "when does it pay back?"),
answered with a verdict and the reason in numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from xzctl.plan.economics import economics, judge
from xzctl.spec.failover import NodeLoad, Placement, may_leave_region, place, spec_loads
from xzctl.spec.models import CapexKind, EdgeNode, Fleet, Region
from xzctl.spec.validate import node_gpu_demand
from xzctl.status import Status

# Below this share of free device slots a region has no room for a traffic spike or a slow drain.
MIN_HEADROOM = 0.10
CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


class Verdict(StrEnum):
    """The plan's words for xzctl.status.Status: a spec that would fail in production is a "fail" (crit)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"

    @classmethod
    def of(cls, status: Status) -> Verdict:
        # A static plan has no unknown: every figure is arithmetic on the spec.
        return {Status.OK: cls.OK, Status.WARN: cls.WARN}.get(status, cls.FAIL)


@dataclass(frozen=True)
class PlanRow:
    section: str  # capacity | n+1 | edge-gpu | cloud-gpu | cost
    subject: str  # a region, an edge node, "fleet" or "cloud"
    check: str
    value: float | None  # None: no finite answer (payback when the fleet loses money)
    limit: float | None
    unit: str
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class Plan:
    fleet: str
    rows: list[PlanRow]

    def count(self, verdict: Verdict) -> int:
        return sum(1 for r in self.rows if r.verdict is verdict)

    def failed(self) -> list[PlanRow]:
        return [r for r in self.rows if r.verdict is Verdict.FAIL]

    def to_dict(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet,
            "summary": {v.value: self.count(v) for v in Verdict},
            # vars, not asdict: the fields are plain values, and asdict deep-copies each (10,000-node plans)
            "rows": [{**vars(r), "verdict": r.verdict.value} for r in self.rows],
        }


def build_plan(fleet: Fleet) -> Plan:
    """Every plan row for the fleet, in reading order: capacity, N+1, GPUs, autoscaling budget, cost."""
    from xzctl.plan.autoscaling import autoscaling_rows  # imports this module's PlanRow

    losses = {name: region_loss(r) for name, r in fleet.regions.items()}
    missing_nodes = sum(loss.nodes_to_add for loss in losses.values())
    rows = [
        *capacity_rows(fleet),
        *n_plus_one_rows(fleet, losses),
        *edge_gpu_rows(fleet),
        *cloud_gpu_rows(fleet),
        *autoscaling_rows(fleet),
        *cost_rows(fleet, missing_nodes, cloud_gpu_shortfall(fleet)),
    ]
    return Plan(fleet=fleet.metadata.name, rows=rows)


def _utilization(used: int, capacity: int) -> float:
    if capacity:
        return used / capacity
    return math.inf if used else 0.0


def _capacity_row(subject: str, devices: int, capacity: int, measured: list[str] | None = None) -> PlanRow:
    used = _utilization(devices, capacity)
    if devices > capacity:
        verdict = Verdict.FAIL
        reason = f"{devices:,} devices on {capacity:,} slots: {devices - capacity:,} devices have no edge node"
    elif 1 - used < MIN_HEADROOM:
        verdict = Verdict.WARN
        reason = f"{used:.1%} used: {capacity - devices:,} free slots, under {MIN_HEADROOM:.0%} headroom"
    else:
        verdict = Verdict.OK
        reason = f"{used:.1%} used, {capacity - devices:,} free slots"
    if measured:
        reason += f" (slots as measured: {', '.join(measured)})"
    return PlanRow("capacity", subject, "devices vs capacity", devices, capacity, "devices", verdict, reason)


def capacity_rows(fleet: Fleet) -> list[PlanRow]:
    """Devices against device slots: max_devices, or the measured devices per node where a class has a profile."""
    rows = [
        _capacity_row(name, r.devices, r.carried_devices, r.measured_sources()) for name, r in fleet.regions.items()
    ]
    capacity = sum(r.carried_devices for r in fleet.regions.values())
    measured = sorted({s for r in fleet.regions.values() for s in r.measured_sources()})
    rows.append(_capacity_row("fleet", fleet.devices, capacity, measured))
    return rows


def _largest(nodes: list[EdgeNode]) -> EdgeNode:
    # The worst single loss: the most capacity gone, and among equals the most devices to move.
    return max(nodes, key=lambda n: (n.capacity.carried_devices, n.devices))


@dataclass(frozen=True)
class RegionLoss:
    """A region after losing its largest edge node."""

    lost: EdgeNode
    remaining: int  # device slots left
    short: int  # devices without a slot in the region (<= 0: it holds)
    nodes_to_add: int  # edge nodes like the lost one that close the gap


def region_loss(region: Region) -> RegionLoss:
    lost = _largest(region.edge_nodes)
    remaining = region.carried_devices - lost.capacity.carried_devices
    short = region.devices - remaining
    # a class measured at 0 devices carries nothing: count each added node as one device, never divide by 0
    add = math.ceil(short / max(1, lost.capacity.carried_devices)) if short > 0 else 0
    return RegionLoss(lost, remaining, short, add)


def _loss(fleet: Fleet, loads: list[NodeLoad], by_region: dict[str, list[int]], lost: EdgeNode) -> Placement:
    """The shared failover model (xzctl.spec.failover) on spec numbers: where `lost`'s devices go."""
    index = next(i for i in by_region[lost.region] if loads[i].node == lost.id)
    same = [i for i in by_region[lost.region] if i != index]
    # A generator: place reads it only when devices leave the region, so a loss the region holds costs its own nodes.
    other = (i for region, indexes in by_region.items() if region != lost.region for i in indexes)
    leavable = lost.devices if may_leave_region(fleet, lost) else 0
    return place(loads, lost.devices, leavable=leavable, same=same, other=other)


def _spare_by_region(loads: list[NodeLoad]) -> dict[str, int]:
    """Free device slots per region (a node over its capacity offers none): one pass, not one per region."""
    spare: dict[str, int] = {}
    for n in loads:
        spare[n.region] = spare.get(n.region, 0) + max(0, n.max_devices - n.devices)
    return spare


def _no_way_out(fleet: Fleet, lost: EdgeNode) -> str:
    if not fleet.regions[lost.region].cross_region_failover:
        return " (cross_region_failover off)"
    return f" (networking.failover_enabled off on {lost.id})"


def n_plus_one_rows(fleet: Fleet, losses: dict[str, RegionLoss]) -> list[PlanRow]:
    """Lose the largest edge node of each region (`losses`, by region): does the rest (or the fleet, with failover)
    hold its devices?"""
    loads = spec_loads(fleet)
    by_region: dict[str, list[int]] = {}
    for i, load in enumerate(loads):
        by_region.setdefault(load.region, []).append(i)
    spare = _spare_by_region(loads)
    fleet_spare = sum(spare.values())
    rows = []
    for name, region in fleet.regions.items():
        loss, devices = losses[name], region.devices
        lost, remaining = loss.lost, loss.remaining
        placed = _loss(fleet, loads, by_region, lost)
        short = lost.devices - placed.same_region
        check = f"lose {lost.id}"
        if short <= 0:
            rows.append(
                PlanRow(
                    "n+1",
                    name,
                    check,
                    devices,
                    remaining,
                    "devices",
                    Verdict.OK,
                    f"the other {len(region.edge_nodes) - 1} node(s) hold all {devices:,} devices "
                    f"({remaining - devices:,} slots spare)",
                )
            )
            continue
        fix = f"add {loss.nodes_to_add} edge node(s) of {lost.capacity.carried_devices} devices to {name}"
        if not placed.unserved:
            verdict = Verdict.WARN
            reason = (
                f"{name} keeps {devices - short:,} of {devices:,} devices; {short:,} fail over to other "
                f"regions ({fleet_spare - spare.get(name, 0):,} spare slots there) at higher latency; {fix}"
            )
        else:
            verdict = Verdict.FAIL
            moved = placed.other_regions
            where = f", {moved:,} fit in other regions" if may_leave_region(fleet, lost) else _no_way_out(fleet, lost)
            reason = (
                f"{placed.unserved:,} devices left without an edge node: {name} holds {devices - short:,} "
                f"of {devices:,}{where}; {fix}"
            )
        rows.append(PlanRow("n+1", name, check, devices, remaining, "devices", verdict, reason))

    nodes, devices = fleet.edge_nodes(), fleet.devices
    lost = _largest(nodes)
    capacity = sum(n.capacity.max_devices for n in nodes) - lost.capacity.max_devices
    unserved = _loss(fleet, loads, by_region, lost).unserved
    if not unserved:
        verdict = Verdict.OK
        reason = f"the fleet holds all {devices:,} devices ({capacity - devices:,} slots spare)"
    else:
        verdict = Verdict.FAIL
        reason = (
            f"{unserved:,} of {devices:,} devices left without an edge node when the fleet loses one node "
            f"({capacity:,} slots remain)"
        )
    rows.append(PlanRow("n+1", "fleet", f"lose {lost.id}", devices, capacity, "devices", verdict, reason))
    return rows


def edge_gpu_rows(fleet: Fleet) -> list[PlanRow]:
    """GPU slots the node's services ask for vs GPUs x time-slicing replicas."""
    target = fleet.kpis.efficiency.gpu_percent / 100
    rows = []
    for node in fleet.edge_nodes():
        gpu = node.capacity.gpu
        demand, slots = node_gpu_demand(node), gpu.slots
        parts = " + ".join(
            f"{name} {s.replicas}x{s.gpu_per_replica}"
            for name, s in node.services.inference().items()
            if s.replicas * s.gpu_per_replica
        )
        budget = f"{gpu.count} GPUs x {gpu.time_slicing_replicas} time-slicing = {slots} slots"
        used = _utilization(demand, slots)
        if demand > slots:
            verdict = Verdict.FAIL
            reason = f"{parts or 'nothing'} = {demand} slots > {budget}: {demand - slots} pods stay Pending"
        elif used > target:
            verdict = Verdict.WARN
            reason = f"{parts} = {demand} of {budget} ({used:.0%}, above the {target:.0%} GPU KPI)"
        else:
            verdict = Verdict.OK
            reason = f"{parts or 'no GPU services'} = {demand} of {budget} ({used:.0%})"
        rows.append(PlanRow("edge-gpu", node.id, "GPU slots", demand, slots, "slots", verdict, reason))
    return rows


def cloud_gpu_shortfall(fleet: Fleet) -> int:
    """Cloud GPU servers to add so that every LLM replica gets its GPUs."""
    cloud = fleet.cloud
    missing = cloud.llm_gpu_demand - cloud.gpu_servers.gpus
    if missing <= 0:
        return 0
    per_server = cloud.gpu_servers.gpus_per_server
    return math.ceil(missing / per_server) if per_server else 0


def cloud_gpu_rows(fleet: Fleet) -> list[PlanRow]:
    cloud = fleet.cloud
    demand, have = cloud.llm_gpu_demand, cloud.gpu_servers.gpus
    parts = " + ".join(
        f"{m.name} {m.replicas}x{m.gpu_per_replica}={m.replicas * m.gpu_per_replica}" for m in cloud.llm_models
    )
    servers = f"{cloud.gpu_servers.count} servers x {cloud.gpu_servers.gpus_per_server} {cloud.gpu_servers.model}"
    if demand > have:
        verdict = Verdict.FAIL
        reason = (
            f"LLM replicas ask for {parts} = {demand} GPUs but {servers} = {have}: {demand - have} GPUs short "
            f"(add {cloud_gpu_shortfall(fleet)} GPU server(s) or cut replicas)"
        )
    elif demand > have - cloud.gpu_servers.gpus_per_server:
        verdict = Verdict.WARN
        reason = f"{parts} = {demand} of {servers} = {have} GPUs: losing one server strands replicas"
    else:
        verdict = Verdict.OK
        reason = f"{parts} = {demand} of {servers} = {have} GPUs"
    return [PlanRow("cloud-gpu", "cloud", "LLM GPUs", demand, have, "GPUs", verdict, reason)]


def money(amount: float, currency: str, digits: int = 0) -> str:
    """The one money format: ¥1,610,000 (`digits` for small amounts such as a device's month, ¥174.94)."""
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{abs(amount):,.{digits}f}"


def _unit_price(fleet: Fleet, kind: CapexKind) -> float:
    return next((i.unit_price for i in fleet.cost.capex if i.kind is kind), 0.0)


def _years(years: float | None) -> str:
    return "never: the fleet loses money" if years is None else f"{years:.1f} years"


def cost_rows(fleet: Fleet, missing_edge_nodes: int, missing_gpu_servers: int) -> list[PlanRow]:
    """Capex, opex, revenue, net, payback and cost per device: xzctl.plan.economics on the spec's devices."""
    cost, cur = fleet.cost, fleet.cost.currency
    devices = fleet.devices  # a sum over every node: read once
    e = economics(fleet, devices)
    capex, opex, revenue, net = e.capex, e.opex_year, e.revenue_year, e.net_year
    th = cost.thresholds

    def row(check: str, value: float | None, limit: float | None, unit: str, outcome: tuple[Verdict, str]) -> PlanRow:
        return PlanRow("cost", "fleet", check, value, limit, unit, *outcome)

    ok = Verdict.OK
    payback = e.payback_years
    rows = [
        row("capex", capex, None, cur, (ok, f"{money(capex, cur)} over {len(cost.capex)} items")),
        row("opex per year", opex, None, cur, (ok, f"{money(opex, cur)} over {len(cost.opex_yearly)} items")),
        row(
            "revenue per year",
            revenue,
            None,
            cur,
            (ok, f"{devices:,} devices x {money(cost.revenue_per_device_year, cur)} = {money(revenue, cur)}"),
        ),
        row(
            "net per year",
            net,
            0,
            cur,
            (
                ok if net > 0 else Verdict.FAIL,
                f"revenue {money(revenue, cur)} - opex {money(opex, cur)} = {money(net, cur)}",
            ),
        ),
        row(
            "payback",
            payback,
            th.max_payback_years,
            "years",
            (
                Verdict.of(judge(payback, th.max_payback_years)),
                f"capex {money(capex, cur)} / net {money(net, cur)} = {_years(payback)}",
            ),
        ),
    ]
    if missing_edge_nodes or missing_gpu_servers:
        # The seed's payback leaves out the hardware its own N+1 and GPU arithmetic asks for.
        extra = missing_edge_nodes * _unit_price(fleet, CapexKind.EDGE_SERVER) + missing_gpu_servers * _unit_price(
            fleet, CapexKind.CLOUD_GPU_SERVER
        )
        fixed = (capex + extra) / net if net > 0 else None
        reason = (
            f"with the {missing_edge_nodes} edge node(s) N+1 needs and the {missing_gpu_servers} cloud GPU "
            f"server(s) the LLMs need: capex {money(capex + extra, cur)} (+{money(extra, cur)}), "
            f"{_years(fixed)} at the same opex"
        )
        rows.append(
            row(
                "payback with fixes",
                fixed,
                th.max_payback_years,
                "years",
                (Verdict.of(judge(fixed, th.max_payback_years)), reason),
            )
        )

    per_device = e.cost_per_device_month
    reason = (
        f"(opex {money(opex, cur)} + capex {money(capex, cur)} / {cost.depreciation_years:g} years) "
        f"/ {devices:,} devices / 12 = {money(per_device, cur)}"
        if per_device is not None
        else "no devices assigned"
    )
    rows.append(
        row(
            "cost per device per month",
            per_device,
            th.max_cost_per_device_month,
            cur,
            (Verdict.of(judge(per_device, th.max_cost_per_device_month)), reason),
        )
    )

    idle = e.idle_share
    reason = f"{e.slots - devices:,} of {e.slots:,} device slots paid for and unused ({idle:.1%})"
    idle_verdict = Verdict.of(judge(idle, th.max_idle_share, over=Status.WARN))
    rows.append(row("idle capacity", idle, th.max_idle_share, "share", (idle_verdict, reason)))
    return rows
