"""The capacity table (per node, region and fleet), shared by `capacity report` and `check all`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.markup import escape

from xzctl.checks import CapacityReport, worst
from xzctl.checks.capacity import Capacity
from xzctl.cli._layout import Column, print_table, summarise
from xzctl.cli._live import status_text
from xzctl.errors import NotFoundError
from xzctl.status import WORST_FIRST


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


# Priority 0 is never dropped; at 80 columns the IDs, verdict, devices and the reason stay (see _layout).
COLUMNS = [
    Column("name"),
    Column("region"),
    Column("status"),
    Column("devices", justify="right"),
    Column("headroom", 1, "right"),
    Column("limit", 3),
    Column("cpu", 2, "right"),
    Column("mem", 4, "right"),
    Column("gpu", 3, "right"),
    Column("p95 e2e ms", 2, "right"),
    Column("errors", 5, "right"),
    Column("queue", 6, "right"),
    Column("cache hit", 6, "right"),
    Column("days to full", 5, "right"),
    Column("why", text=True),
]


def _row(c: Capacity, region: str = "") -> list[str]:
    e2e = c.latency_p95.get("end_to_end")
    return [
        c.name,
        region,
        status_text(c.status),
        "?" if c.devices is None else f"{c.devices}/{c.max_devices}",
        "?" if c.headroom is None else str(c.headroom),
        c.limit or "-",
        _pct(c.cpu),
        _pct(c.memory),
        _pct(c.gpu),
        "-" if e2e is None else f"{e2e * 1000:.0f}",
        "-" if c.error_ratio is None else f"{c.error_ratio:.2%}",
        "-" if c.queue is None else f"{c.queue:.0f}",
        _pct(c.cache_hit),
        "-" if c.days_until_full is None else f"{c.days_until_full:.0f}",
        escape("; ".join(c.reasons) or "-"),
    ]


class SortBy(StrEnum):
    NAME = "name"
    HEADROOM = "headroom"
    DEVICES = "devices"
    CPU = "cpu"
    DAYS = "days"
    STATUS = "status"


_SORT_KEYS = {
    SortBy.NAME: lambda c: (0, c.name),
    SortBy.HEADROOM: lambda c: (c.headroom is None, c.headroom or 0),
    SortBy.DEVICES: lambda c: (c.devices is None, -(c.devices or 0)),
    SortBy.CPU: lambda c: (c.cpu is None, -(c.cpu or 0.0)),
    SortBy.DAYS: lambda c: (c.days_until_full is None, c.days_until_full or 0.0),
    SortBy.STATUS: lambda c: (WORST_FIRST.index(c.status), c.name),
}


@dataclass(frozen=True)
class View:
    """Which rows of a capacity report to show, in which order."""

    regions: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    sort_by: SortBy | None = None

    def node_rows(self, report: CapacityReport) -> list[Capacity]:
        rows = [
            n
            for n in report.nodes.values()
            if (not self.regions or n.region in self.regions) and (not self.nodes or n.name in self.nodes)
        ]
        return sorted(rows, key=_SORT_KEYS[self.sort_by]) if self.sort_by else rows

    def region_rows(self, report: CapacityReport) -> list[Capacity]:
        shown = {n.region for n in self.node_rows(report)}
        return [r for r in report.regions.values() if r.name in shown]

    def filtered(self) -> bool:
        return bool(self.regions or self.nodes)

    def rows(self, report: CapacityReport) -> list[Capacity]:
        """Every shown row, the fleet's only when nothing is filtered out."""
        fleet = [] if self.filtered() else [report.fleet]
        return [*self.node_rows(report), *self.region_rows(report), *fleet]

    def document(self, report: CapacityReport) -> dict[str, Any]:
        data = report.to_dict()
        if self.filtered() or self.sort_by:
            data["nodes"] = [n.to_dict() for n in self.node_rows(report)]
            data["regions"] = [r.to_dict() for r in self.region_rows(report)]
            data["status"] = str(worst(c.status for c in self.rows(report)))
        return data

    def check(self, report: CapacityReport) -> None:
        for name in self.nodes:
            if name not in report.nodes:
                raise NotFoundError(f"no edge node {name!r} in the fleet", hint="see: xzctl fleet plan")
        for name in self.regions:
            if name not in report.regions:
                raise NotFoundError(f"no region {name!r} in the fleet", hint=f"regions: {', '.join(report.regions)}")


def capacity_table(console: Console, report: CapacityReport, view: View = View(), *, wide: bool = False) -> None:
    def shown(rows: list[Capacity], noun: str) -> tuple[list[Capacity], str | None]:
        return summarise(rows, lambda c: c.status.value, WORST_FIRST, wide=wide, noun=noun)

    nodes, nodes_left_out = shown(view.node_rows(report), "edge nodes")
    regions, regions_left_out = shown(view.region_rows(report), "regions")
    rows = [_row(n, n.region) for n in nodes] + [_row(r, "(region)") for r in regions]
    if not view.filtered():
        rows.append(_row(report.fleet, "(fleet)"))
    title = f"capacity {status_text(report.status)} ({report.queries} queries)"
    left_out = "; ".join(n for n in (nodes_left_out, regions_left_out) if n) or None
    print_table(console, COLUMNS, rows, wide=wide, title=title, left_out=left_out)
