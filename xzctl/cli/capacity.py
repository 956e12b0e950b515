"""`xzctl capacity report`: per edge node, region and fleet, devices vs limits, headroom, days until full.

Exit codes as `xzctl check` (0 ok/warn, 1 crit, 3 unknown, 2 bad input).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.checks import CapacityReport, Status, capacity_report, take_snapshot, worst
from xzctl.checks.capacity import Capacity
from xzctl.checks.forecast import Forecast, SeriesForecast
from xzctl.cli._common import FleetOption, Output, OutputOption, PrometheusOptions, duration, emit, option_set
from xzctl.cli._layout import Column, print_table
from xzctl.cli._watch import watch_round
from xzctl.cli.check import (
    BAD,
    HistoryOption,
    ScrapeIntervalOption,
    WindowOption,
    live,
    raise_for,
    status_text,
    titled,
)
from xzctl.errors import BadInputError, ExitCode, NotFoundError

app = typer.Typer(
    help="Capacity of the fleet from live metrics: headroom in devices and days until full.\n\n"
    "Example: xzctl capacity report --region beijing --sort-by headroom"
)


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


_WORST_FIRST = [Status.CRIT, Status.UNKNOWN, Status.WARN, Status.OK]
_SORT_KEYS = {
    SortBy.NAME: lambda c: (0, c.name),
    SortBy.HEADROOM: lambda c: (c.headroom is None, c.headroom or 0),
    SortBy.DEVICES: lambda c: (c.devices is None, -(c.devices or 0)),
    SortBy.CPU: lambda c: (c.cpu is None, -(c.cpu or 0.0)),
    SortBy.DAYS: lambda c: (c.days_until_full is None, c.days_until_full or 0.0),
    SortBy.STATUS: lambda c: (_WORST_FIRST.index(c.status), c.name),
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
    nodes, regions = view.node_rows(report), view.region_rows(report)
    rows = [_row(n, n.region) for n in nodes] + [_row(r, "(region)") for r in regions]
    if not view.filtered():
        rows.append(_row(report.fleet, "(fleet)"))
    title = f"capacity {status_text(report.status)} ({report.queries} queries)"
    print_table(console, COLUMNS, rows, wide=wide, title=title)


@app.command()
@option_set(PrometheusOptions, "prom")
def report(
    *,
    region: list[str] = typer.Option([], "--region", "-r", help="Only this region (repeatable)."),
    node: list[str] = typer.Option([], "--node", "-n", help="Only this edge node (repeatable)."),
    sort_by: SortBy | None = typer.Option(None, "--sort-by", help="Order of the edge nodes.", case_sensitive=False),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until Ctrl-C (or --count reports)."),
    interval: float = typer.Option(
        "10s", "--interval", parser=duration, metavar="DURATION", help="Time between reports with --watch."
    ),
    count: int = typer.Option(0, "--count", min=0, help="With --watch: stop after this many reports (0: no limit)."),
    fleet: Path | None = FleetOption,
    prom: PrometheusOptions,
    window: str = WindowOption,
    history: str = HistoryOption,
    scrape_interval: int | None = ScrapeIntervalOption,
    output: Output = OutputOption,
) -> None:
    """Devices vs max, CPU/memory/GPU vs KPI caps, p95 per service, headroom in devices and its limit.

    Example: xzctl capacity report --prometheus http://127.0.0.1:9090 -o json
    Example: xzctl capacity report --watch --interval 30s
    Example: xzctl capacity report --region beijing --sort-by headroom -o wide
    """
    with live(fleet, prom, window=window, history=history, scrape_interval=scrape_interval) as ctx:
        if watch and interval <= 0:
            raise BadInputError(f"--interval {interval:g} s: a watch needs a pause between reports")
        view = View(tuple(region), tuple(node), sort_by)
        rounds = 0
        while True:
            result = capacity_report(take_snapshot(ctx.client, ctx.fleet, ctx.options))
            view.check(result)
            rounds += 1
            data = view.document(result)
            draw = titled(ctx.header, partial(capacity_table, report=result, view=view, wide=output is Output.WIDE))
            if watch:
                watch_round(data, output, draw, interval)
            else:
                emit(data, output, draw)
            if not watch or rounds == count:
                break
            time.sleep(interval)
    shown = view.rows(result)
    reasons = [f"{c.name} {c.status}: {reason}" for c in shown if c.status in BAD for reason in c.reasons]
    raise_for(worst(c.status for c in shown), reasons, output)


def _band(s: SeriesForecast, hours: slice) -> str:
    peak = max(range(len(s.values))[hours], key=lambda i: s.values[i])
    return f"{s.values[peak]:.0f} ({s.lower[peak]:.0f}-{s.upper[peak]:.0f})"


FORECAST_COLUMNS = [
    Column("REGION"),
    Column("NOW", 0, "right"),
    Column("PEAK 24H (BAND)", 0, "right"),
    Column("PEAK HORIZON (BAND)", 1, "right"),
    Column("MAPE", 2, "right"),
    Column("NAIVE", 2, "right"),
    Column("LOAD 24H REQ/S", 3, "right"),
    Column("REPLICAS NEEDED/MAX", 4),
    Column("NODES NEEDED/HAVE", 1, "right"),
]


def forecast_table(console: Console, result: Forecast, *, wide: bool = False) -> None:
    rows = []
    for r in result.regions.values():
        replicas = ", ".join(f"{s} {n}/{r.replicas_max[s]}" for s, n in r.replicas_needed.items()) or "-"
        rows.append(
            [
                escape(r.region),
                f"{r.devices_now:.0f}",
                _band(r.devices, slice(0, 24)),
                _band(r.devices, slice(0, None)),
                f"{r.devices.mape:.1%}",
                f"{r.devices.naive_mape:.1%}",
                "-" if r.load is None else _band(r.load, slice(0, 24)),
                replicas,
                f"{r.nodes_needed}/{r.nodes}",
            ]
        )
    title = f"forecast, {result.horizon_hours} h ahead (devices in a session, 95 % band)"
    print_table(console, FORECAST_COLUMNS, rows, wide=wide, title=title)
    for warning in result.warnings:
        console.print(f"[yellow]warn[/]: {escape(warning)}")


@app.command()
@option_set(PrometheusOptions, "prom")
def forecast(
    *,
    days: int = typer.Option(14, "--days", min=3, max=35, help="Days of hourly history the model learns from."),
    horizon: str = typer.Option("7d", "--horizon", help="How far ahead to forecast (hours: 24h, days: 7d)."),
    schedule_out: Path | None = typer.Option(
        None, "--schedule-out", help="Write the pre-scaling CronJobs (min replicas per hour) to this folder."
    ),
    kubectl_image: str | None = typer.Option(
        None, "--kubectl-image", help="Image of the pre-scaling CronJobs (production: pinned by digest)."
    ),
    check: bool = typer.Option(False, "--check", help="Exit 1 when a region will need more than it has."),
    fleet: Path | None = FleetOption,
    prom: PrometheusOptions,
    output: Output = OutputOption,
) -> None:
    """Devices per region 24 h and 7 days ahead (Holt-Winters), what that needs, and a pre-scaling schedule.

    Example: xzctl capacity forecast --days 14 --schedule-out ./gitops/prescale
    """
    from xzctl.checks.forecast import capacity_forecast, prescale_files
    from xzctl.cli._common import parse_duration
    from xzctl.render import write_tree

    hours = round(parse_duration(horizon, "--horizon") / 3600)
    if not 1 <= hours <= 14 * 24:
        raise BadInputError("--horizon must be between 1h and 14d")
    with live(fleet, prom, window="5m", history=None, scrape_interval=None, rates=False) as ctx:
        result = capacity_forecast(ctx.client, ctx.fleet, history_hours=days * 24, horizon=hours, end=time.time())
        if schedule_out is not None:
            write_tree(schedule_out, prescale_files(ctx.fleet, result, kubectl_image), what="pre-scaling schedule")
    emit(
        result.to_dict(), output, titled(ctx.header, partial(forecast_table, result=result, wide=output is Output.WIDE))
    )
    if check and result.warnings:  # a verdict, not an error: the warnings are already in the output
        raise typer.Exit(ExitCode.CHECK_FAILED)
