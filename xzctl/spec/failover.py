"""Failover placement: where the devices of a lost edge node go. The one model of it, used by the
static plan (spec numbers), the failover check (live numbers) and the simulator (its node states).

Who may receive: the nodes still up in the lost node's region first; nodes of other regions only when
both the region's `cross_region_failover` and the node's `networking.failover_enabled` allow it
(`failover_enabled: false` keeps the node's devices in their region: it is a setting of the node's
network path to other regions, beside its bandwidth and latency target; inside the region the devices
reconnect through the region's own endpoint whatever the node says).

How: the way the load balancer sends reconnecting devices, one at a time to the receiving node with
the best score, where each placed device lowers that node's score by `score_per_device`. Two phases:
first up to each node's KPI capacity (same region, then other regions), then, for what is left, up to
max_devices (the hard limit at which the server refuses sessions). Devices that fit nowhere are left
without service. From the best node it takes every device it would win in a row before the runner-up's
score catches up, so a loss costs O(receiving nodes x log nodes), not O(devices).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from xzctl.spec.models import EdgeNode, Fleet


@dataclass(frozen=True)
class NodeLoad:
    """What the placement needs of one edge node."""

    node: str
    region: str
    devices: int
    kpi_capacity: int  # devices it carries within every KPI (devices + headroom), at most max_devices
    max_devices: int
    score: float  # the load balancer's score now (higher = preferred)
    score_per_device: float  # how much one more device lowers the score
    limit: str = "max_devices"  # the KPI limit that kpi_capacity stands for
    known: bool = True  # metrics trusted; unknown nodes receive nothing
    failover_enabled: bool = True  # networking.failover_enabled: its devices may leave the region when it is lost


def may_leave_region(fleet: Fleet, node: EdgeNode) -> bool:
    """Whether a lost node's devices may fail over to other regions."""
    return fleet.regions[node.region].cross_region_failover and node.networking.failover_enabled


def spec_loads(fleet: Fleet) -> list[NodeLoad]:
    """The placement inputs from the spec alone: assigned devices, capacity (max_devices, or the measured devices
    per node of the node's class), score = free share."""
    return [
        NodeLoad(
            node=n.id,
            region=n.region,
            devices=n.devices,
            kpi_capacity=n.capacity.carried_devices,
            max_devices=n.capacity.max_devices,
            score=1 - n.devices / n.capacity.max_devices,
            score_per_device=1 / n.capacity.max_devices,
            failover_enabled=n.networking.failover_enabled,
        )
        for n in fleet.edge_nodes()
    ]


@dataclass
class Placement:
    """Where the devices of one loss went (node indexes into the loads)."""

    devices: int  # devices to re-place
    same_region: int = 0
    other_regions: int = 0
    added: dict[int, int] = field(default_factory=dict)

    @property
    def unserved(self) -> int:
        return self.devices - self.same_region - self.other_regions


class _Fill:
    """Mutable placement state of one loss: devices added per node index."""

    def __init__(self, loads: list[NodeLoad], added: dict[int, int]) -> None:
        self.loads = loads
        self.added = added

    def fill(self, candidates: list[int], devices: int, *, hard: bool) -> int:
        """Place up to `devices` on `candidates` (unknown ones get none) by best score; return how many were placed."""
        if devices <= 0:
            return 0
        loads, added = self.loads, self.added
        heap: list[tuple[float, int]] = []
        for i in candidates:
            n = loads[i]
            if n.known and n.devices + added.get(i, 0) < (n.max_devices if hard else n.kpi_capacity):
                heap.append((-(n.score - n.score_per_device * added.get(i, 0)), i))
        heapq.heapify(heap)
        left = devices
        while left > 0 and heap:
            neg_score, i = heapq.heappop(heap)
            n = loads[i]
            room = (n.max_devices if hard else n.kpi_capacity) - n.devices - added.get(i, 0)
            take = min(room, left)
            if heap and n.score_per_device > 0:
                # Devices this node wins before the runner-up's score is better: the next one-at-a-time picks.
                lead = -neg_score - -heap[0][0]
                take = min(take, math.floor(lead / n.score_per_device) + 1)
            added[i] = added.get(i, 0) + take
            left -= take
            if take < room:
                heapq.heappush(heap, (neg_score + n.score_per_device * take, i))
        return devices - left


def place(loads: list[NodeLoad], devices: int, *, leavable: int, same: list[int], other: Iterable[int]) -> Placement:
    """Place `devices` on the nodes at indexes `same` (the lost node's region, without it) first, then at most
    `leavable` of them (those allowed out of the region, see `may_leave_region`) on `other`."""
    placement = Placement(devices)
    fill = _Fill(loads, placement.added)
    outside: list[int] | None = None
    for hard in (False, True):
        placement.same_region += fill.fill(same, placement.unserved, hard=hard)
        # Other regions only when needed: most node losses end in their own region, and `other` is only read
        # then (the plan passes a generator, so a loss that stays in its region never walks the fleet).
        outward = min(placement.unserved, leavable - placement.other_regions)
        if outward > 0:
            outside = list(other) if outside is None else outside
            placement.other_regions += fill.fill(outside, outward, hard=hard)
    return placement
