"""`xzctl check failover|cost|all`: verdicts from live Prometheus metrics, for people and CI.

Exit codes: 0 every verdict ok or warn (warn is for people and never fails a run), 1 a check failed
(crit), 3 unknown (metrics missing, stale, NaN or Prometheus unreachable), 2 bad input. When a run
has both a crit and an unknown verdict, the exit code is 1.

The Prometheus options here are shared with `xzctl capacity report`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xzctl.checks import (
    AllChecks,
    CostReport,
    DrillResult,
    FailoverReport,
    SnapshotOptions,
    Status,
    capacity_report,
    check_all,
    cost_check,
    drill,
    failover_check,
    failure,
    take_snapshot,
    worst,
)
from xzctl.cli._common import FleetOption, Output, OutputOption, StateDirOption, emit, parse_duration
from xzctl.errors import BadInputError
from xzctl.prom import PrometheusClient
from xzctl.spec import Fleet, load_fleet

URL_ENV = "XZCTL_PROMETHEUS_URL"
STATUS_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.UNKNOWN: "magenta", Status.CRIT: "red"}

app = typer.Typer(
    help="Live verdicts for people and CI: failover, cost, all of them. "
    "Exit codes: 0 ok or warn, 1 crit, 2 bad input, 3 unknown (metrics missing, stale or unreachable).",
    no_args_is_help=True,
)

PrometheusUrlOption = typer.Option(
    None,
    "--prometheus",
    help=f"Prometheus URL. Default: the running sandbox's, else ${URL_ENV}.",
    show_default=False,
)
BearerTokenOption = typer.Option(
    None, "--bearer-token", envvar="XZCTL_PROMETHEUS_TOKEN", help="Bearer token for Prometheus.", show_default=False
)
BasicAuthOption = typer.Option(
    None,
    "--basic-auth",
    envvar="XZCTL_PROMETHEUS_BASIC_AUTH",
    help="USER:PASSWORD for Prometheus.",
    show_default=False,
)
HeaderOption = typer.Option(
    None, "--header", "-H", help="Extra HTTP header 'Name: value' (repeatable), e.g. X-Scope-OrgID: fleet-a."
)
TimeoutOption = typer.Option(10.0, "--timeout", min=0.001, help="Seconds per Prometheus request.")
RetriesOption = typer.Option(2, "--retries", min=0, max=10, help="Retries of transient errors (reset, 502/503/504).")
WindowOption = typer.Option("5m", "--window", help="Rate window for latency, errors and cache ratios.")
HistoryOption = typer.Option("7d", "--history", help="How far back the days-until-full forecast looks.")
ScrapeIntervalOption = typer.Option(
    None,
    "--scrape-interval",
    min=1,
    help="Scrape interval in seconds (series older than 2x are stale). Default: the sandbox's, else the spec's.",
    show_default=False,
)


@dataclass
class Live:
    """What every live command needs: the fleet, a Prometheus client and snapshot options."""

    fleet: Fleet
    client: PrometheusClient
    options: SnapshotOptions
    simulator_url: str | None  # set when the Prometheus is the running sandbox's


def _headers(values: list[str] | None) -> dict[str, str]:
    headers = {}
    for value in values or []:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise BadInputError(f"--header {value!r} is not 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


@contextmanager
def live(
    fleet_path: Path | None,
    *,
    prometheus: str | None,
    bearer_token: str | None,
    basic_auth: str | None,
    header: list[str] | None,
    timeout: float,
    retries: int,
    window: str,
    history: str | None,
    scrape_interval: int | None,
    state_dir: Path | None,
) -> Iterator[Live]:
    from xzctl.sandbox import current_prometheus_url, default_state_dir, sandbox_status

    fleet = load_fleet(fleet_path).fleet
    parse_duration(window, "--window")
    where = state_dir or default_state_dir()
    sandbox_url = current_prometheus_url(where)
    url = prometheus or sandbox_url or os.environ.get(URL_ENV)
    if not url:
        raise BadInputError(
            "no Prometheus to ask", hint=f"pass --prometheus URL, set ${URL_ENV}, or `xzctl sandbox up`"
        )
    auth = None
    if basic_auth:
        user, sep, password = basic_auth.partition(":")
        if not sep:
            raise BadInputError("--basic-auth must be USER:PASSWORD")
        auth = (user, password)
    # Talking to the running sandbox: its scrape interval is known, and its simulator can run a drill.
    sandbox = sandbox_status(where) if sandbox_url is not None and url == sandbox_url else None
    interval = scrape_interval or (sandbox.scrape_interval_seconds if sandbox else None)
    options = SnapshotOptions(
        window=window,
        history_seconds=parse_duration(history, "--history") if history else 0,
        scrape_interval_seconds=interval,
    )
    client = PrometheusClient(
        url, bearer_token=bearer_token, basic_auth=auth, headers=_headers(header), timeout=timeout, retries=retries
    )
    with client:
        yield Live(fleet, client, options, sandbox.simulator_url if sandbox else None)


def status_text(status: Status) -> str:
    return f"[{STATUS_STYLE[status]}]{status}[/]"


def raise_for(status: Status, summary: str) -> None:
    err = failure(status, summary)
    if err is not None:
        raise err


def failover_table(console: Console, report: FailoverReport, result: DrillResult | None) -> None:
    bad = [f for f in report.failures if f.status is not Status.OK]
    console.print(
        f"failover {status_text(report.status)}: {len(report.failures) - len(bad)}/{len(report.failures)} "
        "single node and region failures survive"
    )
    if bad:
        table = Table("lost", "kind", "devices", "status", "outcome", "same region", "other regions", "unserved", "why")
        for f in bad:
            table.add_row(
                f.lost,
                f.kind,
                str(f.devices),
                status_text(f.status),
                f.outcome,
                str(f.placed_same_region),
                str(f.placed_other_regions),
                str(f.unserved),
                escape(f.reason),
            )
        console.print(table)
    if result is not None:
        console.print(f"drill {result.node}: {status_text(result.status)}: {escape(result.reason)}")


def cost_table(console: Console, report: CostReport) -> None:
    table = Table("cost", "value", title=f"cost {status_text(report.status)} ({report.currency})")
    rows = report.to_dict()
    for key in ("active_devices", "run_rate_revenue_year", "cost_month", "cost_per_device_month"):
        table.add_row(key.replace("_", " "), "n/a" if rows[key] is None else str(rows[key]))
    known = report.active_devices is not None
    table.add_row("idle share of device slots", "n/a" if report.idle_share is None else f"{report.idle_share:.1%}")
    payback = "n/a" if not known else "never" if report.payback_years is None else f"{report.payback_years:.2f}"
    table.add_row("payback years", payback)
    console.print(table)
    for reason in report.reasons:
        console.print(f"  - {escape(reason)}")


@app.command()
def failover(
    *,
    drill_node: str | None = typer.Option(
        None, "--drill", help="Sandbox only: stop this simulated node for real and time the failover."
    ),
    drill_timeout: float = typer.Option(90.0, "--drill-timeout", min=1, help="Give up the drill after this long."),
    fleet: Path | None = FleetOption,
    prometheus: str | None = PrometheusUrlOption,
    bearer_token: str | None = BearerTokenOption,
    basic_auth: str | None = BasicAuthOption,
    header: list[str] | None = HeaderOption,
    timeout: float = TimeoutOption,
    retries: int = RetriesOption,
    window: str = WindowOption,
    scrape_interval: int | None = ScrapeIntervalOption,
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Simulate losing every edge node and every region: survives, overloads, or drops devices.

    Example: xzctl check failover --prometheus http://prometheus:9090 -o json
    Example (sandbox): xzctl check failover --drill bj-edge-01
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
        history=None,
        scrape_interval=scrape_interval,
        state_dir=state_dir,
    ) as ctx:
        if drill_node is not None and ctx.simulator_url is None:
            raise BadInputError("--drill stops a simulated node: it needs the running sandbox's Prometheus")
        snapshot = take_snapshot(ctx.client, ctx.fleet, ctx.options)
        capacity = capacity_report(snapshot)
        report = failover_check(ctx.fleet, capacity, snapshot)
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
    emit(data, output, lambda console: failover_table(console, report, result))
    raise_for(status, report.summary() + (f"; drill: {result.reason}" if result else ""))


@app.command()
def cost(
    *,
    fleet: Path | None = FleetOption,
    prometheus: str | None = PrometheusUrlOption,
    bearer_token: str | None = BearerTokenOption,
    basic_auth: str | None = BasicAuthOption,
    header: list[str] | None = HeaderOption,
    timeout: float = TimeoutOption,
    retries: int = RetriesOption,
    window: str = WindowOption,
    scrape_interval: int | None = ScrapeIntervalOption,
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Cost per active device per month, idle share, payback: the seed's cost model on live numbers.

    Example: xzctl check cost --fleet fleet.yaml -o yaml
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
        history=None,
        scrape_interval=scrape_interval,
        state_dir=state_dir,
    ) as ctx:
        report = cost_check(take_snapshot(ctx.client, ctx.fleet, ctx.options))
    emit(report.to_dict(), output, lambda console: cost_table(console, report))
    raise_for(report.status, report.summary())


@app.command("all")
def all_checks(
    *,
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
    output: Output = typer.Option(Output.JSON, "--output", "-o", help="Output format.", case_sensitive=False),
) -> None:
    """Every verdict (capacity, failover, cost) in one JSON document, for CI. Exit 0 ok, 1 crit, 3 unknown.

    Example: xzctl check all --prometheus "$PROM_URL" > verdicts.json || echo "exit $?"
    """
    from xzctl.cli.capacity import capacity_table

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
        result: AllChecks = check_all(ctx.client, ctx.fleet, ctx.options)

    def table(console: Console) -> None:
        capacity_table(console, result.capacity)
        failover_table(console, result.failover, None)
        cost_table(console, result.cost)

    emit(result.to_dict(), output, table)
    raise_for(result.status, result.summary())
