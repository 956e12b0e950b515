"""Verdicts from live metrics: capacity, failover, cost.

One snapshot of the fleet's metrics (a fixed number of PromQL queries, xzctl.checks.snapshot) feeds
every check; `check_all` gives the one document CI reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xzctl.checks.autoscaling import check_autoscalers
from xzctl.checks.capacity import CapacityReport, CapacityThresholds, capacity_report
from xzctl.checks.cost import CostReport, cost_check
from xzctl.checks.failover import DrillResult, FailoverReport, drill, failover_check
from xzctl.checks.snapshot import FleetSnapshot, SnapshotOptions, take_snapshot
from xzctl.prom import PrometheusClient
from xzctl.spec import Fleet
from xzctl.status import Status, failure, worst


@dataclass
class AllChecks:
    status: Status
    capacity: CapacityReport
    failover: FailoverReport
    cost: CostReport

    def summary(self) -> str:
        return " | ".join(r.summary() for r in (self.capacity, self.failover, self.cost))

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "summary": self.summary(),
            "queries": self.capacity.queries,
            "checks": {
                "capacity": self.capacity.to_dict(),
                "failover": self.failover.to_dict(),
                "cost": self.cost.to_dict(),
            },
        }


def check_all(
    client: PrometheusClient,
    fleet: Fleet,
    options: SnapshotOptions = SnapshotOptions(),
    thresholds: CapacityThresholds = CapacityThresholds(),
) -> AllChecks:
    snapshot = take_snapshot(client, fleet, options)
    capacity = capacity_report(snapshot, thresholds)
    failover = failover_check(fleet, capacity, snapshot)
    check_autoscalers(client, fleet, failover, capacity)
    cost = cost_check(snapshot)
    return AllChecks(worst([capacity.status, failover.status, cost.status]), capacity, failover, cost)


__all__ = [
    "AllChecks",
    "CapacityReport",
    "CapacityThresholds",
    "CostReport",
    "DrillResult",
    "FailoverReport",
    "FleetSnapshot",
    "SnapshotOptions",
    "Status",
    "capacity_report",
    "check_all",
    "cost_check",
    "drill",
    "failover_check",
    "failure",
    "take_snapshot",
    "worst",
]
