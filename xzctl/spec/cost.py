"""Cost of the fleet spec: capital and operating expenses, revenue and the thresholds they are judged by."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from xzctl.spec.base import Money, PositiveInt, Strict
from xzctl.spec.types import LabelText


class CapexKind(StrEnum):
    EDGE_SERVER = "edge_server"
    CLOUD_GPU_SERVER = "cloud_gpu_server"
    NETWORK = "network"
    STORAGE = "storage"
    OTHER = "other"


class CapexItem(Strict):
    item: LabelText
    kind: CapexKind = CapexKind.OTHER
    quantity: PositiveInt
    unit_price: Money

    @property
    def total(self) -> float:
        return self.quantity * self.unit_price


class OpexItem(Strict):
    item: LabelText
    yearly: Money


class CostThresholds(Strict):
    max_payback_years: Annotated[float, Field(gt=0)] = 3.0
    max_cost_per_device_month: Money = 200.0
    max_idle_share: Annotated[float, Field(ge=0, le=1)] = 0.5


class Cost(Strict):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "CNY"
    capex: list[CapexItem] = Field(min_length=1)
    opex_yearly: list[OpexItem]
    revenue_per_device_year: Money
    depreciation_years: Annotated[float, Field(gt=0)] = 3.0
    thresholds: CostThresholds = CostThresholds()

    @property
    def capex_total(self) -> float:
        return sum(i.total for i in self.capex)

    @property
    def opex_total(self) -> float:
        return sum(i.yearly for i in self.opex_yearly)
