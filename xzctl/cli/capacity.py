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
from xzctl.cli._common import FleetOption, Output, OutputOption, StateDirOption, duration, emit, stdout
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
    capacity_reasons,
    live,
    raise_for,
    status_text,
    titled,
)

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
    interval: float = typer.Option(
        "10s", "--interval", parser=duration, metavar="DURATION", help="Time between reports with --watch."
    ),
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
    Example: xzctl capacity report --watch --interval 30s
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
            emit(result.to_dict(), output, titled(ctx.header, partial(capacity_table, report=result)))
            if not watch or rounds == count:
                break
            time.sleep(interval)
    raise_for(result.status, capacity_reasons(result), output)
