"""The one cost model of the fleet (the seed's ROI table), used by the static plan with the spec's
assigned devices and by the cost check with the live active devices.

- cost per month: capex / depreciation years / 12 + yearly opex / 12; per device: that / devices;
- revenue per year: devices x revenue per device; net: revenue - opex; payback: capex / net (never when
  the net is not positive);
- idle share (IDLE_DEFINITION): the share of paid edge device slots that carries no device. The plan
  and the cost check both use it, against the same threshold.
Each figure is judged against fleet.cost.thresholds by `judge`: over -> crit, past 90 % of it -> warn.
Idle hardware costs money but serves every device, so an idle share over its threshold is a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from xzctl.spec.models import Fleet
from xzctl.status import Status

WARN_FRACTION = 0.9  # a figure past 90 % of its threshold warns
IDLE_DEFINITION = "unused device slots: 1 - devices / sum of edge max_devices"


@dataclass(frozen=True)
class Economics:
    devices: int
    slots: int  # device slots paid for (sum of edge max_devices)
    capex: float
    opex_year: float
    revenue_year: float
    net_year: float
    payback_years: float | None  # None: never pays back
    cost_month: float
    cost_per_device_month: float | None  # None: no devices
    idle_share: float
    idle_cost_month: float  # the capex share of the idle slots, per month


def economics(fleet: Fleet, devices: int) -> Economics:
    """The cost model with `devices` devices (assigned in the spec, or active now)."""
    cost = fleet.cost
    capex, opex = cost.capex_total, cost.opex_total
    capex_month = capex / cost.depreciation_years / 12
    cost_month = capex_month + opex / 12
    revenue = devices * cost.revenue_per_device_year
    net = revenue - opex
    slots = sum(n.capacity.max_devices for n in fleet.edge_nodes())
    idle = 1 - devices / slots if slots else 1.0
    return Economics(
        devices=devices,
        slots=slots,
        capex=capex,
        opex_year=opex,
        revenue_year=revenue,
        net_year=net,
        payback_years=capex / net if net > 0 else None,
        cost_month=cost_month,
        cost_per_device_month=cost_month / devices if devices > 0 else None,
        idle_share=idle,
        idle_cost_month=capex_month * max(0.0, idle),
    )


def judge(value: float | None, limit: float, *, over: Status = Status.CRIT) -> Status:
    """A figure against its threshold: None (no finite answer) and over it -> `over`, near it -> warn."""
    if value is None or value > limit:
        return over
    return Status.WARN if value > WARN_FRACTION * limit else Status.OK
