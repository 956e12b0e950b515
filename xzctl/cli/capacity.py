"""`xzctl capacity report`: per edge node, region and fleet, devices vs limits, headroom, days until full.

Exit codes as `xzctl check` (0 ok/warn, 1 crit, 3 unknown, 2 bad input).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xzctl.checks import CapacityReport, capacity_report, take_snapshot
from xzctl.checks.capacity import Capacity
from xzctl.checks.forecast import Forecast, SeriesForecast
from xzctl.cli._common import FleetOption, Output, OutputOption, StateDirOption, emit, stdout
from xzctl.cli.check import (
    BasicAuthOption,
    BearerTokenOption,
    HeaderOption,
    HistoryOption,
    PrometheusUrlOption,
    RetriesOption,
    ScrapeIntervalOption,
    TimeoutOption,
    WindowOption,
    live,
    raise_for,
    status_text,
)
from xzctl.errors import BadInputError, CheckFailedError

app = typer.Typer(help="Capacity of the fleet from live metrics: headroom in devices and days until full.")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _row(c: Capacity, region: str = "") -> list[str]:
    e2e = c.latency_p95.get("end_to_end")
    return [
        c.name,
        region,
        status_text(c.status),
        "?" if c.devices is None else f"{c.devices}/{c.max_devices}",
        "?" if c.headroom is None else f"{c.headroom} ({c.limit})",
        _pct(c.cpu),
        _pct(c.memory),
        _pct(c.gpu),
        "-" if e2e is None else f"{e2e * 1000:.0f} ms",
        "-" if c.error_ratio is None else f"{c.error_ratio:.2%}",
        "-" if c.queue is None else f"{c.queue:.0f}",
        _pct(c.cache_hit),
        "-" if c.days_until_full is None else f"{c.days_until_full:.0f}",
        escape("; ".join(c.reasons)),
    ]


def capacity_table(console: Console, report: CapacityReport) -> None:
    columns = ["name", "region", "status", "devices", "headroom (limit)", "cpu", "mem", "gpu", "p95 e2e"]
    columns += ["errors", "queue", "cache hit", "days to full", "why"]
    table = Table(*columns, title=f"capacity {status_text(report.status)} ({report.queries} queries)")
    for node in report.nodes.values():
        table.add_row(*_row(node, node.region))
    table.add_section()
    for region in report.regions.values():
        table.add_row(*_row(region, "(region)"))
    table.add_section()
    table.add_row(*_row(report.fleet, "(fleet)"))
    console.print(table)


@app.command()
def report(
    *,
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until Ctrl-C (or --count reports)."),
    interval: float = typer.Option(10.0, "--interval", min=1, help="Seconds between reports with --watch."),
    count: int = typer.Option(0, "--count", min=0, help="With --watch: stop after this many reports (0: no limit)."),
    fleet: Path | None = FleetOption,
    prometheus: str | None = PrometheusUrlOption,
    bearer_token: str | None = BearerTokenOption,
    basic_auth: str | None = BasicAuthOption,
    header: list[str] | None = HeaderOption,
    timeout: float = TimeoutOption,
    retries: int = RetriesOption,
    window: str = WindowOption,
    history: str = HistoryOption,
    scrape_interval: int | None = ScrapeIntervalOption,
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Devices vs max, CPU/memory/GPU vs KPI caps, p95 per service, headroom in devices and its limit.

    Example: xzctl capacity report --prometheus http://127.0.0.1:9090 -o json
    Example: xzctl capacity report --watch --interval 30
    """
    with live(
        fleet,
        prometheus=prometheus,
        bearer_token=bearer_token,
        basic_auth=basic_auth,
        header=header,
        timeout=timeout,
        retries=retries,
        window=window,
        history=history,
        scrape_interval=scrape_interval,
        state_dir=state_dir,
    ) as ctx:
        rounds = 0
        while True:
            result = capacity_report(take_snapshot(ctx.client, ctx.fleet, ctx.options))
            rounds += 1
            if watch and output is Output.TABLE:
                stdout.clear()
            emit(result.to_dict(), output, partial(capacity_table, report=result))
            if not watch or rounds == count:
                break
            time.sleep(interval)
    raise_for(result.status, result.summary())


def _band(s: SeriesForecast, hours: slice) -> str:
    peak = max(range(len(s.values))[hours], key=lambda i: s.values[i])
    return f"{s.values[peak]:.0f} ({s.lower[peak]:.0f}-{s.upper[peak]:.0f})"


def forecast_table(console: Console, result: Forecast) -> None:
    columns = ["region", "devices now", "peak 24h (band)", "peak 7d (band)", "backtest MAPE", "naive MAPE"]
    columns += ["load peak 24h (req/s)", "replicas needed/max", "nodes needed/have"]
    table = Table(*columns, title=f"forecast, {result.horizon_hours} h ahead (devices in a session, 95 % band)")
    for r in result.regions.values():
        replicas = ", ".join(f"{s} {n}/{r.replicas_max[s]}" for s, n in r.replicas_needed.items()) or "-"
        table.add_row(
            r.region,
            f"{r.devices_now:.0f}",
            _band(r.devices, slice(0, 24)),
            _band(r.devices, slice(0, None)),
            f"{r.devices.mape:.1%}",
            f"{r.devices.naive_mape:.1%}",
            "-" if r.load is None else _band(r.load, slice(0, 24)),
            replicas,
            f"{r.nodes_needed}/{r.nodes}",
        )
    console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warn[/]: {escape(warning)}")


@app.command()
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
    prometheus: str | None = PrometheusUrlOption,
    bearer_token: str | None = BearerTokenOption,
    basic_auth: str | None = BasicAuthOption,
    header: list[str] | None = HeaderOption,
    timeout: float = TimeoutOption,
    retries: int = RetriesOption,
    state_dir: Path | None = StateDirOption,
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
    with live(
        fleet,
        prometheus=prometheus,
        bearer_token=bearer_token,
        basic_auth=basic_auth,
        header=header,
        timeout=timeout,
        retries=retries,
        window="5m",
        history=None,
        scrape_interval=None,
        state_dir=state_dir,
    ) as ctx:
        result = capacity_forecast(ctx.client, ctx.fleet, history_hours=days * 24, horizon=hours, end=time.time())
        if schedule_out is not None:
            write_tree(schedule_out, prescale_files(ctx.fleet, result, kubectl_image), what="pre-scaling schedule")
    emit(result.to_dict(), output, partial(forecast_table, result=result))
    if check and result.warnings:
        raise CheckFailedError(f"{len(result.warnings)} region forecast(s) need more than the fleet has")
