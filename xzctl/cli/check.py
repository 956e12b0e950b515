"""`xzctl check failover|cost|all`: verdicts from live Prometheus metrics, for people and CI.

Exit codes: 0 every verdict ok or warn (warn is for people and never fails a run), 1 a check failed
(crit), 3 unknown (metrics missing, stale, NaN or Prometheus unreachable), 2 bad input. When a run
has both a crit and an unknown verdict, the exit code is 1.

The live plumbing (which Prometheus, which fleet, how a verdict is shown) is `xzctl/cli/_live.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.checks import (
    AllChecks,
    CostReport,
    DrillResult,
    FailoverReport,
    Status,
    capacity_report,
    check_all,
    cost_check,
    drill,
    failover_check,
    take_snapshot,
    worst,
)
from xzctl.checks.autoscaling import check_autoscalers
from xzctl.cli._capacity_table import capacity_table
from xzctl.cli._common import (
    FleetOption,
    Output,
    OutputOption,
    PrometheusOptions,
    duration,
    emit,
    option_set,
    remember_output,
)
from xzctl.cli._layout import Column, print_table, summarise
from xzctl.cli._live import (
    HistoryOption,
    ScrapeIntervalOption,
    WindowOption,
    live,
    raise_for,
    status_text,
    titled,
)
from xzctl.errors import BadInputError
from xzctl.status import WORST_FIRST

app = typer.Typer(
    help="Live verdicts for people and CI: failover, cost, all of them. "
    "Exit codes: 0 ok or warn, 1 crit, 2 bad input, 3 unknown (metrics missing, stale or unreachable).\n\n"
    "Example: xzctl check all --prometheus http://127.0.0.1:9090 > verdicts.json",
    no_args_is_help=True,
)


FAILOVER_COLUMNS = [
    Column("lost"),
    Column("kind"),
    Column("devices", 1, "right"),
    Column("status"),
    Column("outcome", 2),
    Column("same region", 3, "right"),
    Column("other regions", 3, "right"),
    Column("unserved", 1, "right"),
    Column("why", text=True),
]


def failover_table(console: Console, report: FailoverReport, result: DrillResult | None, *, wide: bool = False) -> None:
    bad = [f for f in report.failures if f.status is not Status.OK]
    console.print(
        f"failover {status_text(report.status)}: {len(report.failures) - len(bad)}/{len(report.failures)} "
        "single node and region failures survive"
    )
    if bad:
        shown, left_out = summarise(bad, lambda f: f.status.value, WORST_FIRST, wide=wide, noun="failures not ok")
        rows = [
            [
                f.lost,
                f.kind,
                str(f.devices),
                status_text(f.status),
                f.outcome,
                str(f.placed_same_region),
                str(f.placed_other_regions),
                str(f.unserved),
                escape(f.reason or "-"),
            ]
            for f in shown
        ]
        print_table(console, FAILOVER_COLUMNS, rows, wide=wide, left_out=left_out)
    if result is not None:
        console.print(f"drill {result.node}: {status_text(result.status)}: {escape(result.reason)}")


COST_COLUMNS = [Column("cost"), Column("value", justify="right")]


def cost_table(console: Console, report: CostReport, *, wide: bool = False) -> None:
    from xzctl.plan.static import money

    cur = report.currency

    def shown(value: float | None, fmt: Callable[[float], str]) -> str:
        return "n/a" if value is None else fmt(value)

    known = report.active_devices is not None
    payback = "n/a" if not known else "never" if report.payback_years is None else f"{report.payback_years:.2f} years"
    rows = [
        ["active devices", shown(report.active_devices, lambda v: f"{v:,.0f}")],
        ["run rate revenue a year", shown(report.run_rate_revenue_year, lambda v: money(v, cur))],
        ["cost a month", shown(report.cost_month, lambda v: money(v, cur))],
        ["cost per device a month", shown(report.cost_per_device_month, lambda v: money(v, cur, 2))],
        ["idle share of device slots", shown(report.idle_share, lambda v: f"{v:.1%}")],
        ["idle cost a month", shown(report.idle_cost_month, lambda v: money(v, cur))],
        ["payback", payback],
    ]
    # The one table style (print_table), money in the plan's format: ¥173,889, not 173888.889.
    print_table(console, COST_COLUMNS, rows, wide=wide, title=f"cost {status_text(report.status)} ({cur})")
    for reason in report.reasons:
        console.print(f"  - {escape(reason)}")


@app.command()
@option_set(PrometheusOptions, "prom")
def failover(
    *,
    drill_node: str | None = typer.Option(
        None, "--drill", help="Sandbox only: stop this simulated node for real and time the failover."
    ),
    drill_timeout: float = typer.Option(
        "90s", "--drill-timeout", parser=duration, metavar="DURATION", help="Give up the drill after this long."
    ),
    fleet: Path | None = FleetOption,
    prom: PrometheusOptions,
    window: str | None = WindowOption,
    scrape_interval: int | None = ScrapeIntervalOption,
    output: Output = OutputOption,
) -> None:
    """Simulate losing every edge node and every region: survives, overloads, or drops devices.

    Example: xzctl check failover --prometheus http://prometheus:9090 -o json
    Example (sandbox): xzctl check failover --drill bj-edge-01
    """
    with live(fleet, prom, window=window, history=None, scrape_interval=scrape_interval) as ctx:
        if drill_node is not None and ctx.simulator_url is None:
            raise BadInputError("--drill stops a simulated node: it needs the running sandbox's Prometheus")
        snapshot = take_snapshot(ctx.client, ctx.fleet, ctx.options)
        capacity = capacity_report(snapshot)
        report = failover_check(ctx.fleet, capacity, snapshot)
        check_autoscalers(ctx.client, ctx.fleet, report, capacity)
        result = None
        if drill_node is not None and ctx.simulator_url is not None:
            from xzctl.sandbox import SimulatorClient

            sim = SimulatorClient(ctx.simulator_url)

            def stop() -> None:
                sim.control({"action": "node_down", "node": drill_node})

            def restore() -> None:
                sim.control({"action": "node_up", "node": drill_node})

            result = drill(
                ctx.client,
                ctx.fleet,
                capacity,
                report,
                drill_node,
                stop=stop,
                restore=restore,
                timeout_seconds=drill_timeout,
            )
    data = report.to_dict()
    status = report.status
    if result is not None:
        data["drill"] = result.to_dict()
        status = worst([status, result.status])
        data["status"] = str(status)
    wide = output is Output.WIDE
    emit(data, output, titled(ctx.header, lambda console: failover_table(console, report, result, wide=wide)))
    raise_for(status, output)


@app.command()
@option_set(PrometheusOptions, "prom")
def cost(
    *,
    fleet: Path | None = FleetOption,
    prom: PrometheusOptions,
    window: str | None = WindowOption,
    scrape_interval: int | None = ScrapeIntervalOption,
    output: Output = OutputOption,
) -> None:
    """Cost per active device per month, idle share, payback: the seed's cost model on live numbers.

    Example: xzctl check cost --fleet fleet.yaml -o yaml
    """
    with live(fleet, prom, window=window, history=None, scrape_interval=scrape_interval) as ctx:
        report = cost_check(take_snapshot(ctx.client, ctx.fleet, ctx.options))
    emit(
        report.to_dict(),
        output,
        titled(ctx.header, lambda console: cost_table(console, report, wide=output is Output.WIDE)),
    )
    raise_for(report.status, output)


@app.command("all")
@option_set(PrometheusOptions, "prom")
def all_checks(
    *,
    fleet: Path | None = FleetOption,
    prom: PrometheusOptions,
    window: str | None = WindowOption,
    history: str = HistoryOption,
    scrape_interval: int | None = ScrapeIntervalOption,
    output: Output = typer.Option(
        Output.JSON, "--output", "-o", help="Output format.", case_sensitive=False, callback=remember_output
    ),
) -> None:
    """Every verdict (capacity, failover, cost) in one JSON document, for CI. Exit 0 ok, 1 crit, 3 unknown.

    Example: xzctl check all --prometheus "$PROM_URL" > verdicts.json || echo "exit $?"
    """
    with live(fleet, prom, window=window, history=history, scrape_interval=scrape_interval) as ctx:
        result: AllChecks = check_all(ctx.client, ctx.fleet, ctx.options)

    def table(console: Console) -> None:
        capacity_table(console, result.capacity, wide=output is Output.WIDE)
        failover_table(console, result.failover, None, wide=output is Output.WIDE)
        cost_table(console, result.cost, wide=output is Output.WIDE)

    emit(result.to_dict(), output, titled(ctx.header, table))
    raise_for(result.status, output)
