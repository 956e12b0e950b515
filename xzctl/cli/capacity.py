"""`xzctl capacity report|forecast`: headroom in devices per edge node, region and fleet, and the demand ahead.

Exit codes as `xzctl check` (0 ok/warn, 1 crit, 3 unknown, 2 bad input).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.checks import capacity_report, take_snapshot, worst
from xzctl.checks.forecast import Forecast, SeriesForecast
from xzctl.cli._capacity_table import SortBy, View, capacity_table
from xzctl.cli._common import FleetOption, Output, OutputOption, PrometheusOptions, duration, emit, option_set
from xzctl.cli._layout import Column, print_table
from xzctl.cli._live import HistoryOption, ScrapeIntervalOption, WindowOption, live, raise_for, titled
from xzctl.cli._watch import watch_round
from xzctl.errors import BadInputError, ExitCode

app = typer.Typer(
    help="Capacity of the fleet from live metrics: headroom in devices and days until full.\n\n"
    "Example: xzctl capacity report --region beijing --sort-by headroom"
)


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
    window: str | None = WindowOption,
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
    # The verdict names the nodes that set it; why is said once, on their rows above.
    top = view.region_rows(result) if view.filtered() else [result.fleet]
    reasons = [reason if c is result.fleet else f"{c.name} {reason}" for c in top for reason in c.reasons]
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
    with live(fleet, prom, window=None, history=None, scrape_interval=None, rates=False) as ctx:
        result = capacity_forecast(ctx.client, ctx.fleet, history_hours=days * 24, horizon=hours, end=time.time())
        if schedule_out is not None:
            write_tree(schedule_out, prescale_files(ctx.fleet, result, kubectl_image), what="pre-scaling schedule")
    emit(
        result.to_dict(), output, titled(ctx.header, partial(forecast_table, result=result, wide=output is Output.WIDE))
    )
    if check and result.warnings:  # a verdict, not an error: the warnings are already in the output
        raise typer.Exit(ExitCode.CHECK_FAILED)
