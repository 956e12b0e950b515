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

from xzctl.checks import Status, capacity_report, take_snapshot, worst
from xzctl.checks.forecast import Forecast, LoadForecast
from xzctl.checks.forecast_models import SeriesForecast
from xzctl.cli._capacity_table import SortBy, View, capacity_table
from xzctl.cli._common import FleetOption, Output, OutputOption, PrometheusOptions, duration, emit, option_set
from xzctl.cli._layout import Column, print_table
from xzctl.cli._live import HistoryOption, ScrapeIntervalOption, WindowOption, live, raise_for, titled
from xzctl.cli._watch import watch_round
from xzctl.errors import BadInputError, ExitCode
from xzctl.metrics.history import MAX_HISTORY_DAYS

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
    raise_for(worst(c.status for c in view.rows(result)), output)


def _band(s: SeriesForecast, hours: slice) -> str:
    peak = max(range(len(s.values))[hours], key=lambda i: s.values[i])
    return f"{s.values[peak]:.0f} ({s.lower[peak]:.0f}-{s.upper[peak]:.0f})"


def _load_band(load: LoadForecast | None) -> str:
    if load is None:
        return "-"
    peak = max(range(min(24, len(load.values))), key=lambda i: load.values[i])
    return f"{load.values[peak]:.0f} ({load.lower[peak]:.0f}-{load.upper[peak]:.0f})"


FORECAST_COLUMNS = [
    Column("REGION"),
    Column("NOW", 0, "right"),
    Column("PEAK 24H (BAND)", 0, "right"),
    Column("PEAK HORIZON (BAND)", 1, "right"),
    Column("MODEL"),
    Column("MAPE", 0, "right"),
    Column("NAIVE", 0, "right"),
    Column("COVER", 2, "right"),
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
                r.devices.model,
                f"{r.devices.mape:.1%}",
                f"{r.devices.naive_mape:.1%}",
                f"{r.devices.coverage:.0%}",
                _load_band(r.load),
                replicas,
                f"{r.nodes_needed}/{r.nodes}",
            ]
        )
    title = f"forecast {result.horizon_hours} h ahead: devices in a session, 95 % band; MAPE, COVER: backtest"
    print_table(console, FORECAST_COLUMNS, rows, wide=wide, title=title)
    for r in result.regions.values():
        if r.events:
            console.print(f"events: {escape(r.region)}: {escape(', '.join(r.events))}")
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    for why in result.unknown.values():
        console.print(f"[magenta]unknown[/]: no forecast for {escape(why)}")
    for warning in result.warnings:
        console.print(f"[yellow]warn[/]: {escape(warning)}")


def _as_of(text: str | None) -> float:
    """--at: unix seconds or ISO 8601 (UTC unless it says otherwise); now when not given."""
    from datetime import UTC, datetime

    now = time.time()
    if text is None:
        return now
    try:
        at = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise BadInputError(f"--at {text!r}: give a time as 2026-05-28T10:00Z or unix seconds") from None
        at = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if at > now:
        raise BadInputError(f"--at {text}: in the future; a forecast as of a time needs the history before it")
    return at


@app.command()
@option_set(PrometheusOptions, "prom")
def forecast(
    *,
    days: int | None = typer.Option(
        None,
        "--days",
        min=4,
        max=MAX_HISTORY_DAYS,
        help=f"Days of hourly history to learn from (default: all it holds, up to {MAX_HISTORY_DAYS}).",
    ),
    horizon: str = typer.Option("7d", "--horizon", help="How far ahead to forecast (hours: 24h, days: 7d)."),
    at: str | None = typer.Option(
        None,
        "--at",
        metavar="TIME",
        help="Forecast as of this past time (ISO 8601 or unix seconds), from the history before it.",
    ),
    events: Path | None = typer.Option(
        None, "--events", help="YAML list of known events (name, start, end, regions, factor), beside the spec's."
    ),
    schedule_out: Path | None = typer.Option(
        None, "--schedule-out", help="Write the pre-scaling CronJobs (min replicas per hour of week) to this folder."
    ),
    kubectl_image: str | None = typer.Option(
        None, "--kubectl-image", help="Image of the pre-scaling CronJobs (production: pinned by digest)."
    ),
    check: bool = typer.Option(False, "--check", help="Exit 1 when a region will need more than it has."),
    fleet: Path | None = FleetOption,
    prom: PrometheusOptions,
    output: Output = OutputOption,
) -> None:
    """Devices per region ahead (model chosen by backtest against the seasonal naive), needs, pre-scaling schedule.

    Example: xzctl capacity forecast --schedule-out ./gitops/prescale
    Example: xzctl capacity forecast --at 2026-05-28T00:00Z --horizon 24h --events holidays.yaml
    """
    from xzctl.checks.forecast import capacity_forecast, prescale_files
    from xzctl.cli._common import parse_duration
    from xzctl.render import write_tree
    from xzctl.spec.events import read_events

    hours = round(parse_duration(horizon, "--horizon") / 3600)
    if not 1 <= hours <= 14 * 24:
        raise BadInputError("--horizon must be between 1h and 14d")
    end = _as_of(at)
    extra = read_events(events) if events is not None else []
    with live(fleet, prom, window=None, history=None, scrape_interval=None, rates=False) as ctx:
        history = days * 24 if days is not None else None
        result = capacity_forecast(ctx.client, ctx.fleet, history_hours=history, horizon=hours, end=end, events=extra)
        if schedule_out is not None:
            write_tree(schedule_out, prescale_files(ctx.fleet, result, kubectl_image), what="pre-scaling schedule")
    emit(
        result.to_dict(), output, titled(ctx.header, partial(forecast_table, result=result, wide=output is Output.WIDE))
    )
    if check and result.warnings:  # a verdict, not an error: the warnings are already in the output
        raise typer.Exit(ExitCode.CHECK_FAILED)
    if result.unknown:  # the regions that answered are forecast above; these are not
        raise_for(Status.UNKNOWN, output)
