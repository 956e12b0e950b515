"""The autoscaling budget: what the autoscalers may ask for, against the GPUs there are, with and without a node.

Each edge node runs its own Deployments (pods are pinned to the node), so an edge service scales per node
between its autoscaling `min` and `max`. Two questions bound those decisions:

- at peak every service of a node may sit at `max`: the sum of max replicas x GPU slots per replica must fit
  the node's GPUs after time slicing, or the autoscaler's last replicas stay Pending when they matter most;
- when a node is lost, its devices reconnect to the other nodes of the region (up to their max_devices,
  spread by free slots), whose load grows by the same share: the replicas they then need (the count sized
  for their devices, scaled by that share) must stay within their `max` (N+1 at peak).

`replicas` in the spec is the sizing at peak for the node's devices; `min` is the floor at night. The live
check passes the replicas running now instead, so the same arithmetic answers both. This module is in the
spec layer so that `fleet validate`, `fleet plan` and `check failover` share it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from xzctl.spec.memo import per_spec
from xzctl.spec.models import Autoscaling, Cloud, EdgeNode, Fleet, InferenceService, LlmModel, Region

# A survivor whose load grows by less than this share keeps its replicas: the target leaves that much slack.
LOAD_SLACK = 0.02


def scaler(svc: InferenceService | LlmModel) -> Autoscaling | None:
    """The service's autoscaling, None when it has a fixed count or is switched off (replicas 0)."""
    return svc.autoscaling if svc.replicas else None


def max_replicas(svc: InferenceService | LlmModel) -> int:
    auto = scaler(svc)
    return auto.max if auto else svc.replicas


def node_gpu_demand_at_max(node: EdgeNode) -> int:
    """GPU slots the node's services take when every autoscaler sits at its max."""
    return sum(max_replicas(s) * s.gpu_per_replica for s in node.services.inference().values())


def cloud_gpu_demand_at_max(cloud: Cloud) -> int:
    return sum(max_replicas(m) * m.gpu_per_replica for m in cloud.llm_models)


def devices_after_loss(region: Region, lost: EdgeNode) -> dict[str, int]:
    """Devices on each other node of the region once the lost node's devices reconnected (spread by free slots)."""
    others = [n for n in region.edge_nodes if n.id != lost.id]
    spare = {n.id: _spare(n) for n in others}
    total_spare = sum(spare.values())
    moved = min(lost.devices, total_spare)
    return {n.id: n.devices + _share(moved, spare[n.id], total_spare) for n in others}


def _spare(node: EdgeNode) -> int:
    return max(0, node.capacity.max_devices - node.devices)


def _share(moved: int, spare: int, total_spare: int) -> int:
    """The moved devices that reconnect to a survivor with `spare` of the survivors' `total_spare` free slots."""
    return moved * spare // total_spare if total_spare else 0


def needed_replicas(running: int, devices_before: int, devices_after: int) -> int:
    """Replicas a service needs when its node's devices grow from `before` to `after`."""
    if devices_before <= 0 or running <= 0:
        return running
    growth = devices_after / devices_before
    return running if growth <= 1 + LOAD_SLACK else math.ceil(running * growth - LOAD_SLACK)


@dataclass(frozen=True)
class PeakShortfall:
    """A surviving node whose autoscaler cannot reach what its share needs at peak after `lost` goes down."""

    region: str
    lost: str
    node: str
    service: str
    needed: int
    limit: int
    reason: str


def loss_shortfalls(
    region: Region,
    lost: EdgeNode,
    running: Mapping[tuple[str, str], int] | None = None,
    devices: Mapping[str, int] | None = None,
) -> list[PeakShortfall]:
    """The autoscalers of the other nodes of the region whose max is below their need when `lost` goes down.

    `running` (node, service) -> replicas and `devices` node -> devices are the live values (only the services
    in `running` are judged: a count no autoscaler set says nothing about the load); without them the spec's
    replicas and devices (the peak sizing) are used. The GPUs are not checked here: every autoscaler
    stops at its max, and `node_gpu_demand_at_max` already bounds that.
    """
    adjusted = region
    if devices is not None:
        nodes = [n.model_copy(update={"devices": devices.get(n.id, 0)}) for n in region.edge_nodes]
        adjusted = region.model_copy(update={"edge_nodes": nodes})
        lost = next(n for n in nodes if n.id == lost.id)
    after = devices_after_loss(adjusted, lost)
    return [
        short
        for node in adjusted.edge_nodes
        if node.id != lost.id
        for short in _node_shortfalls(region.name, lost.id, node, after[node.id], running)
    ]


def _node_shortfalls(
    region: str, lost: str, node: EdgeNode, after: int, running: Mapping[tuple[str, str], int] | None
) -> list[PeakShortfall]:
    """The autoscalers of one surviving node whose max is below their need once it carries `after` devices."""
    out: list[PeakShortfall] = []
    for name, svc in node.services.inference().items():
        auto = scaler(svc)
        if auto is None:  # a fixed count is the operator's sizing; the device N+1 rows judge it
            continue
        count = svc.replicas if running is None else running.get((node.id, name))
        if count is None:  # live, and no autoscaler reports this service: nothing to judge
            continue
        need = needed_replicas(count, node.devices, after)
        if need > auto.max:
            reason = f"{name} needs {need} replicas for {after} devices but its autoscaler max is {auto.max}"
            out.append(PeakShortfall(region, lost, node.id, name, need, auto.max, reason))
    return out


def region_peak_shortfalls(region: Region) -> list[PeakShortfall]:
    """Every single-node loss of the region at peak, spec values; empty when the region is N+1 at peak.

    Linear in the region's nodes when it holds (10,000-node fleets): a survivor's share of a lost node grows with
    the lost node's devices per free slot of the others, so each survivor is first judged against the loss that
    moves the most onto it; only when one fails there is every loss judged, node by node.
    """
    nodes = region.edge_nodes
    if len(nodes) < 2:
        return []
    spare = {n.id: _spare(n) for n in nodes}
    total = sum(spare.values())

    def moved_per_slot(lost: EdgeNode) -> Fraction:  # exact: the shares it orders are floored integers
        others = total - spare[lost.id]
        return Fraction(min(lost.devices, others), others) if others else Fraction(0)

    worst = sorted(nodes, key=moved_per_slot, reverse=True)[:2]
    for node in nodes:
        lost = worst[1] if worst[0] is node else worst[0]
        others = total - spare[lost.id]
        after = node.devices + _share(min(lost.devices, others), spare[node.id], others)
        if _node_shortfalls(region.name, lost.id, node, after, None):
            return [s for lost in nodes for s in loss_shortfalls(region, lost)]
    return []


@per_spec
def peak_shortfalls(fleet: Fleet) -> dict[str, list[PeakShortfall]]:
    """`region_peak_shortfalls` of every region, once per loaded spec: `fleet plan` validates, then plans."""
    return {name: region_peak_shortfalls(region) for name, region in fleet.regions.items()}
