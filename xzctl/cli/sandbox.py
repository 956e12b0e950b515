"""`xzctl sandbox up|status|down`: a real Prometheus scraping the fleet simulator on 127.0.0.1."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xzctl.cli._common import FleetOption, Output, OutputOption, emit, stderr
from xzctl.errors import BadInputError, UnknownStateError
from xzctl.sandbox import (
    SandboxAlreadyUpError,
    SandboxInfo,
    default_state_dir,
    sandbox_status,
    start_sandbox,
    stop_sandbox,
    target_health,
)

app = typer.Typer(help="Run a local sandbox: the fleet simulator and a real Prometheus.", no_args_is_help=True)

StateDirOption = typer.Option(
    None,
    "--state-dir",
    envvar="XZCTL_STATE_DIR",
    help="Where the sandbox keeps pids, URLs and temp dirs. Default: ./.xzctl",
    show_default=False,
)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match or int(match.group(1)) == 0:
        raise BadInputError(f"bad duration {text!r}", hint="like 90m, 12h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def _summary(info: SandboxInfo) -> dict[str, Any]:
    return {
        "prometheus_url": info.prometheus_url,
        "simulator_url": info.simulator_url,
        "edge_nodes": info.nodes,
        "fleet": info.fleet_path,
        "seed": info.seed,
        "scrape_interval_seconds": info.scrape_interval_seconds,
        "history": info.history,
        "pids": info.pids,
        "running": info.alive(),
    }


def _print_summary(console: Console, data: dict[str, Any]) -> None:
    console.print(f"Prometheus  [bold]{escape(data['prometheus_url'])}[/]")
    console.print(
        f"Simulator   {escape(data['simulator_url'])}  ({data['edge_nodes']} edge nodes, seed {data['seed']})"
    )
    console.print(f"Fleet       {escape(data['fleet'])}")
    if data["history"]:
        h = data["history"]
        console.print(f"History     {h['samples']:,} samples backfilled, step {h['step_seconds']} s")


@app.command()
def up(
    *,
    fleet: Path | None = FleetOption,
    scale: int | None = typer.Option(None, "--scale", min=1, help="Simulate a generated fleet of N edge nodes."),
    history: str | None = typer.Option(None, "--history", help="Backfill this much history first, e.g. 7d."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulator (same seed, same fleet behaviour)."),
    scrape_interval: int = typer.Option(10, "--scrape-interval", min=1, max=300, help="Seconds between scrapes."),
    prometheus_bin: str | None = typer.Option(None, "--prometheus-bin", help="Prometheus binary. Default: PATH."),
    port: int = typer.Option(0, "--port", help="Simulator port on 127.0.0.1 (0: any free port)."),
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Start the fleet simulator and a Prometheus scraping every edge node; print the Prometheus URL.

    Later commands (capacity, checks, canary analysis) default to this Prometheus while it runs.

    Example: xzctl sandbox up --scale 1000 --history 7d
    """
    span = parse_duration(history) if history else None
    where = state_dir or default_state_dir()
    try:
        info = start_sandbox(
            fleet,
            where,
            scrape_interval_seconds=scrape_interval,
            seed=seed,
            history=span,
            scale=scale,
            prometheus_bin=prometheus_bin,
            port=port,
        )
    except SandboxAlreadyUpError as exc:
        stderr.print(f"sandbox already up; stop it first with: xzctl sandbox down (state in {escape(str(where))})")
        info = exc.info
    emit(_summary(info), output, lambda console: _print_summary(console, _summary(info)))


@app.command()
def status(state_dir: Path | None = StateDirOption, output: Output = OutputOption) -> None:
    """Show the sandbox's URLs, processes and the scrape health of every edge node.

    Example: xzctl sandbox status -o json
    """
    info = sandbox_status(state_dir or default_state_dir())
    if info is None:
        raise UnknownStateError("no sandbox is running", hint="start one with: xzctl sandbox up")
    data = _summary(info)
    running = all(data["running"].values())
    data["targets"] = target_health(info) if running else {}

    def table(console: Console) -> None:
        _print_summary(console, data)
        for name, alive in data["running"].items():
            state = "[green]running[/]" if alive else "[red]not running[/]"
            console.print(f"{name:<11} pid {data['pids'][name]} {state}")
        targets = Table(box=box.SIMPLE_HEAD, title="Scrape targets")
        for col in ("edge node", "region", "health", "last error"):
            targets.add_column(col)
        for node, t in sorted(data["targets"].items()):
            style = {"up": "green", "down": "red"}.get(t["health"], "yellow")
            targets.add_row(node, t["region"], f"[{style}]{t['health']}[/]", escape(t["last_error"]))
        if data["targets"]:
            console.print(targets)

    emit(data, output, table)
    if not running:
        raise UnknownStateError("the sandbox's processes are not all running", hint="xzctl sandbox down; then up")


@app.command()
def down(state_dir: Path | None = StateDirOption) -> None:
    """Stop the simulator and Prometheus (whole process groups) and remove the sandbox's temp dirs.

    Example: xzctl sandbox down
    """
    where = state_dir or default_state_dir()
    if sandbox_status(where) is None:
        stderr.print("no sandbox is running")
        return
    stop_sandbox(where)
    stderr.print("sandbox stopped")
