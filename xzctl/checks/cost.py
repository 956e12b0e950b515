"""Cost check: the seed's cost model (capex, yearly opex, revenue per device) with live devices and utilization.

- run-rate revenue: active devices now x revenue per device per year;
- cost per active device per month: (capex / depreciation years + yearly opex) / 12 / active devices;
- idle share of the hardware cost, split as OpenCost splits idle: each asset's monthly cost x (1 -
  utilization). An edge server's cost is split evenly over the resources it has (CPU, memory, GPU)
  with each resource's live utilization; capex without a utilization metric of its own (cloud GPU
  servers, network, storage) carries device load (active / max devices) as its utilization;
- payback in years: capex / (run-rate revenue - yearly opex); never when the margin is not positive.
Each is compared with fleet.cost.thresholds: over -> crit, within 10 % of it -> warn.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from xzctl.checks.snapshot import FleetSnapshot
from xzctl.checks.verdict import Status, worst
from xzctl.spec.models import CapexKind

WARN_FRACTION = 0.9  # a figure past 90 % of its threshold warns


@dataclass
class CostReport:
    status: Status
    reasons: list[str]
    currency: str
    active_devices: int | None
    run_rate_revenue_year: float | None
    cost_month: float
    cost_per_device_month: float | None
    idle_share: float | None
    idle_cost_month: float | None
    payback_years: float | None  # None: never pays back (or unknown, see status)

    def summary(self) -> str:
        if self.active_devices is None:
            return f"cost {self.status}: {'; '.join(self.reasons)}"
        per_device = "n/a" if self.cost_per_device_month is None else f"{self.cost_per_device_month:.2f}"
        payback = "never" if self.payback_years is None else f"{self.payback_years:.2f} years"
        text = (
            f"cost {self.status}: {per_device} {self.currency}/device/month, "
            f"idle {self.idle_share or 0:.0%}, payback {payback}"
        )
        return text + (f"; {'; '.join(self.reasons)}" if self.reasons else "")

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None, digits: int = 2) -> float | None:
            return None if v is None else round(v, digits)

        return {
            "check": "cost",
            "status": str(self.status),
            "summary": self.summary(),
            "reasons": self.reasons,
            "currency": self.currency,
            "active_devices": self.active_devices,
            "run_rate_revenue_year": r(self.run_rate_revenue_year),
            "cost_month": r(self.cost_month),
            "cost_per_device_month": r(self.cost_per_device_month),
            "idle_share": r(self.idle_share, 4),
            "idle_cost_month": r(self.idle_cost_month),
            "payback_years": r(self.payback_years, 3),
        }


def _against(value: float, limit: float, text: str) -> tuple[Status, str | None]:
    if value > limit:
        return Status.CRIT, f"{text} > {limit:g}"
    if value > WARN_FRACTION * limit:
        return Status.WARN, f"{text} near {limit:g}"
    return Status.OK, None


def cost_check(snapshot: FleetSnapshot) -> CostReport:
    fleet = snapshot.fleet
    cost = fleet.cost
    th = cost.thresholds
    monthly_capex = cost.capex_total / cost.depreciation_years / 12
    cost_month = monthly_capex + cost.opex_total / 12
    unknown = [m.node for m in snapshot.nodes.values() if not m.known]
    if unknown:
        # Active devices are a fleet sum: a node without metrics would make every figure wrong, not just its own.
        reason = f"no trustworthy metrics for {len(unknown)} edge node(s): {', '.join(unknown[:5])}"
        return CostReport(Status.UNKNOWN, [reason], cost.currency, None, None, cost_month, None, None, None, None)

    nodes = {n.id: n for n in fleet.edge_nodes()}
    devices = round(sum(m.devices or 0 for m in snapshot.nodes.values()))
    device_load = devices / max(1, sum(n.capacity.max_devices for n in nodes.values()))
    # Each edge server's utilization is the mean over the resources it has (an even cost split).
    edge_util = statistics.fmean(
        statistics.fmean(
            [m.cpu or 0.0, m.memory or 0.0] + ([m.gpu or 0.0] if nodes[m.node].capacity.gpu.count > 0 else [])
        )
        for m in snapshot.nodes.values()
    )
    idle_month = 0.0
    for item in cost.capex:
        util = edge_util if item.kind is CapexKind.EDGE_SERVER else device_load
        idle_month += item.total / cost.depreciation_years / 12 * (1 - min(1.0, util))
    idle_share = idle_month / monthly_capex if monthly_capex > 0 else 0.0

    revenue = devices * cost.revenue_per_device_year
    margin = revenue - cost.opex_total
    payback = cost.capex_total / margin if margin > 0 else None
    per_device = cost_month / devices if devices > 0 else None

    verdicts: list[tuple[Status, str | None]] = [
        _against(idle_share, th.max_idle_share, f"idle share {idle_share:.0%} of hardware cost")
    ]
    if per_device is None:
        verdicts.append((Status.CRIT, "no active devices: every cost is idle"))
    else:
        verdicts.append(
            _against(per_device, th.max_cost_per_device_month, f"{per_device:.2f} {cost.currency}/device/month")
        )
    if payback is None:
        verdicts.append((Status.CRIT, f"never pays back: revenue {revenue:,.0f} <= opex {cost.opex_total:,.0f}/year"))
    else:
        verdicts.append(_against(payback, th.max_payback_years, f"payback {payback:.2f} years"))
    return CostReport(
        status=worst(s for s, _ in verdicts),
        reasons=[text for _, text in verdicts if text],
        currency=cost.currency,
        active_devices=devices,
        run_rate_revenue_year=revenue,
        cost_month=cost_month,
        cost_per_device_month=per_device,
        idle_share=idle_share,
        idle_cost_month=idle_month,
        payback_years=payback,
    )
