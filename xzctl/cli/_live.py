"""What every live command shares: which Prometheus and fleet it reads (`live`), the options of a rate window,
and how a verdict is shown (`raise_for`: a result on stdout and an exit code, never an error line)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from xzctl.checks import SnapshotOptions, Status, failure
from xzctl.checks.window import default_window, plan_window
from xzctl.cli._common import CHOSEN_OUTPUT, Output, PrometheusOptions, parse_duration, promql_duration, stdout
from xzctl.cli._context import context_heading
from xzctl.cli._fleet import load
from xzctl.prom import PrometheusClient
from xzctl.spec import Fleet

STATUS_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.UNKNOWN: "magenta", Status.CRIT: "red"}

WindowOption = typer.Option(
    None,
    "--window",
    help="Rate window for CPU, latency, errors and cache ratios. Default: 5m, or 4 scrape intervals if longer.",
    show_default=False,
)
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
    header: str = ""  # context, Prometheus and fleet: the first line of every live table


@contextmanager
def live(
    fleet_path: Path | None,
    prom: PrometheusOptions,
    *,
    window: str | None,
    history: str | None,
    scrape_interval: int | None,
    rates: bool = True,
) -> Iterator[Live]:
    """The fleet, Prometheus and options of a live command; `rates=False` for one that reads no rate window."""
    from xzctl.sandbox import current_prometheus_url, default_state_dir, sandbox_status
    from xzctl.sandbox.ready import live_span

    where = prom.state_dir or default_state_dir()
    target = prom.target()  # flags > environment > context > sandbox
    # Talking to the running sandbox: its scrape interval is known, and its simulator can run a drill.
    sandbox = (
        sandbox_status(where) if target.source == "sandbox" or target.url == current_prometheus_url(where) else None
    )
    # The sandbox's Prometheus scrapes the sandbox's fleet (perhaps a generated --scale one): judge that fleet.
    fleet = load(fleet_path, sandbox_fleet=sandbox.fleet_path if sandbox else None).fleet
    interval = scrape_interval or (sandbox.scrape_interval_seconds if sandbox else None)
    slowest = interval or max(n.monitoring.metrics_interval_seconds for n in fleet.edge_nodes())
    if window is None:
        window, seconds = default_window(slowest)
    else:
        window = promql_duration(window, "--window")
        seconds = parse_duration(window, "--window")
    with target.client() as client:
        # The window must fit in the sandbox's live samples. Its backfilled history (if any) is another simulator
        # run's counters at a step of minutes, so a rate across the seam is wrong.
        age = live_span(client, sandbox) if sandbox is not None and rates else None
        planned = plan_window(window, seconds, slowest, age)
        if planned.note and CHOSEN_OUTPUT[:1] in ([Output.JSON], [Output.YAML]):
            print(f"xzctl: {planned.note}", file=sys.stderr)  # a table says it in its heading
        options = SnapshotOptions(
            window=planned.window,
            history_seconds=parse_duration(history, "--history") if history else 0,
            scrape_interval_seconds=interval,
        )
        heading = f"{context_heading()} · prometheus {target.url} ({target.source}) · fleet {fleet.metadata.name}"
        heading += f" · {planned.note}" if planned.note else ""
        yield Live(fleet, client, options, sandbox.simulator_url if sandbox else None, heading)


def titled(heading: str, draw: Callable[[Console], None]) -> Callable[[Console], None]:
    """A table drawer that first says which context, Prometheus and fleet the numbers come from."""

    def both(console: Console) -> None:
        console.print(heading, style="dim", markup=False)
        draw(console)

    return both


def status_text(status: Status) -> str:
    return f"[{STATUS_STYLE[status]}]{status}[/]"


def raise_for(status: Status, output: Output) -> None:
    """A verdict is a result, not an error: the exit code says crit (1) or unknown (3). The table above said why
    (each reason once, on its row or under the table) and the documents hold the reasons, so a table ends with the
    verdict's one line and nothing is said again."""
    err = failure(status, "")
    if err is None:
        return
    if output in (Output.TABLE, Output.WIDE):
        stdout.print(f"verdict {status_text(status)} (exit {err.exit_code})")
    raise typer.Exit(err.exit_code)
