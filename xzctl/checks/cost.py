"""Cost check: the fleet's one cost model (xzctl.plan.economics, as in the static plan) on the live
active devices: cost per active device per month, run-rate revenue, payback in years, and the idle
share (unused device slots, the plan's definition). Each is compared with fleet.cost.thresholds by the
same rule as the plan (over -> crit, within 10 % of it -> warn; idle over its threshold only warns).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xzctl.checks.snapshot import FleetSnapshot
from xzctl.plan.economics import IDLE_DEFINITION, economics, judge
from xzctl.plan.static import money
from xzctl.status import Status, worst


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
            f"idle {self.idle_share or 0:.0%} of device slots, payback {payback}"
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
            "idle_definition": IDLE_DEFINITION,
            "idle_cost_month": r(self.idle_cost_month),
            "payback_years": r(self.payback_years, 3),
        }


def _against(
    value: float, limit: float, text: str, shown: Callable[[float], str], over: Status = Status.CRIT
) -> tuple[Status, str | None]:
    """A reason with the limit in the same units as the value (¥150.00, 20%, 3.00 years), never a raw float."""
    status = judge(value, limit, over=over)
    if status is Status.OK:
        return status, None
    return status, f"{text} {'>' if value > limit else 'near'} {shown(limit)}"


def cost_check(snapshot: FleetSnapshot) -> CostReport:
    fleet = snapshot.fleet
    cost = fleet.cost
    th = cost.thresholds
    unknown = [m.node for m in snapshot.nodes.values() if not m.known]
    if unknown:
        # Active devices are a fleet sum: a node without metrics would make every figure wrong, not just its own.
        reason = f"no trustworthy metrics for {len(unknown)} edge node(s): {', '.join(unknown[:5])}"
        cost_month = economics(fleet, 0).cost_month
        return CostReport(Status.UNKNOWN, [reason], cost.currency, None, None, cost_month, None, None, None, None)

    e = economics(fleet, round(sum(m.devices or 0 for m in snapshot.nodes.values())))
    cur = cost.currency

    def per_device(v: float) -> str:
        return money(v, cur, 2)

    def years(v: float) -> str:
        return f"{v:.2f} years"

    idle = f"idle share {e.idle_share:.0%} of device slots"
    verdicts = [_against(e.idle_share, th.max_idle_share, idle, lambda v: f"{v:.0%}", Status.WARN)]
    if e.cost_per_device_month is None:
        verdicts.append((Status.CRIT, "no active devices: every cost is idle"))
    else:
        text = f"{per_device(e.cost_per_device_month)}/device/month"
        verdicts.append(_against(e.cost_per_device_month, th.max_cost_per_device_month, text, per_device))
    if e.payback_years is None:
        verdicts.append(
            (
                Status.CRIT,
                f"never pays back: revenue {money(e.revenue_year, cur)} <= opex {money(e.opex_year, cur)}/year",
            )
        )
    else:
        verdicts.append(_against(e.payback_years, th.max_payback_years, f"payback {years(e.payback_years)}", years))
    return CostReport(
        status=worst(s for s, _ in verdicts),
        reasons=[text for _, text in verdicts if text],
        currency=cost.currency,
        active_devices=e.devices,
        run_rate_revenue_year=e.revenue_year,
        cost_month=e.cost_month,
        cost_per_device_month=e.cost_per_device_month,
        idle_share=e.idle_share,
        idle_cost_month=e.idle_cost_month,
        payback_years=e.payback_years,
    )
