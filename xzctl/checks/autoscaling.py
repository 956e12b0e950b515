"""`check failover` with the autoscalers: the replicas running now (from metrics) against each autoscaler's max.

For every single-node loss, the other nodes of the region take its devices (as the plan's N+1 at peak does);
their services need the replicas running now scaled by their device growth, and an autoscaler whose max is
below that cannot follow: the loss then survives by device count but answers slower (warn).
"""

from __future__ import annotations

from collections.abc import Mapping

from xzctl.checks.capacity import CapacityReport
from xzctl.checks.failover import FailoverReport
from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.prom.client import PrometheusClient
from xzctl.prom.regions import per_region
from xzctl.spec.autoscaling import loss_shortfalls
from xzctl.spec.models import Fleet
from xzctl.status import Status, worst


def running_replicas(client: PrometheusClient, fleet: Fleet) -> dict[tuple[str, str], int]:
    """(node, service) -> replicas running now; one query per region. A region that does not answer has none here:
    its nodes' losses are unknown already (their metrics are), the others' limits still count."""
    split = per_region(list(fleet.regions), lambda region: client.query(q.service_replicas(filters={c.REGION: region})))
    out = {}
    for samples in split.answers.values():
        for sample in samples:
            if not sample.is_nan:
                out[(sample.labels.get(c.NODE, ""), sample.labels.get(c.SERVICE, ""))] = round(sample.value)
    return out


def add_autoscaler_limits(
    fleet: Fleet, report: FailoverReport, running: Mapping[tuple[str, str], int], devices: Mapping[str, int]
) -> None:
    """Warn on each node loss whose region's autoscalers cannot reach what the moved devices need."""
    if not running:  # no autoscaler reports replicas: the plan's N+1 at peak (spec counts) is the answer
        return
    nodes = {n.id: n for n in fleet.edge_nodes()}
    for verdict in report.failures:
        lost = nodes.get(verdict.lost)
        if verdict.kind != "node" or lost is None or verdict.status is Status.UNKNOWN:
            continue
        region = fleet.regions[lost.region]
        shorts = loss_shortfalls(region, lost, running, devices)
        if not shorts:
            continue
        verdict.status = worst([verdict.status, Status.WARN])
        why = "; ".join(f"{s.node}: {s.reason}" for s in shorts[:3])
        verdict.reason = f"{verdict.reason}; autoscalers: {why}" if verdict.reason else f"autoscalers: {why}"
    report.status = worst(f.status for f in report.failures)


def check_autoscalers(client: PrometheusClient, fleet: Fleet, report: FailoverReport, capacity: CapacityReport) -> None:
    """`add_autoscaler_limits` with the live replicas and the devices in session now (one more query per region)."""
    devices = {n: cap.devices for n, cap in capacity.nodes.items() if cap.devices is not None}
    add_autoscaler_limits(fleet, report, running_replicas(client, fleet), devices)
