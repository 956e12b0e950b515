"""`xzctl loadtest run|worker`: emulated devices speak the real protocol to a node and measure its turns."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from xzctl.cli._common import Output, OutputOption, StateDirOption, duration, emit, stderr
from xzctl.cli._layout import Column, print_table
from xzctl.errors import BadInputError, NoSandboxError
from xzctl.loadtest.corpus import load_corpus
from xzctl.loadtest.settings import TURN_EVERY, TURN_TIMEOUT, Arrivals, LoadSettings, check_workers
from xzctl.loadtest.summary import FIRST_AUDIO, STT, TURN, Snapshot

if TYPE_CHECKING:
    from collections.abc import Callable

app = typer.Typer(
    help="Emulated devices (Locust users) speak the device protocol to a node's xiaozhi server and measure each "
    "turn: stt, first reply audio, whole turn, failures by kind.\n\n"
    "Example: xzctl loadtest run --devices 4 --duration 90s -o json",
    no_args_is_help=True,
)
PROGRESS_EVERY_OFF_TTY = 10.0  # seconds between progress lines in a log; a terminal's line is redrawn each second


def _target(url: str | None, ota_url: str | None, state_dir: Path | None) -> tuple[str, str]:
    """The user's URLs, else the running sandbox's real node (loopback): never a guessed host."""
    if url or ota_url:
        if not (url and ota_url):
            raise BadInputError("give both --url (the WebSocket) and --ota-url (the OTA endpoint the token comes from)")
        return url, ota_url
    from xzctl.sandbox import default_state_dir, sandbox_status

    where = state_dir or default_state_dir()
    info = sandbox_status(where)
    if info is None:
        raise NoSandboxError(where)
    server = (info.real_node or {}).get("server") or {}
    if not (server.get("websocket_url") and server.get("ota_url")):
        raise BadInputError(
            "the sandbox has no real node with a xiaozhi server",
            hint="xzctl sandbox up --real-node NODE, or give --url and --ota-url",
        )
    return str(server["websocket_url"]), str(server["ota_url"])


def _progress(console: Console) -> Callable[[Snapshot], None]:
    last = [0.0]

    def show(snap: Snapshot) -> None:
        if console.is_terminal:
            console.print(snap.progress_line(), end="\r", markup=False)
        elif time.monotonic() - last[0] >= PROGRESS_EVERY_OFF_TTY:
            last[0] = time.monotonic()
            console.print(snap.progress_line(), markup=False)

    return show


def print_summary(console: Console, snap: Snapshot, *, wide: bool) -> None:
    rows = []
    for name, label in ((STT, "stt"), (FIRST_AUDIO, "first audio"), (TURN, "whole turn")):
        t = snap.timing(name)
        rows.append([label, str(t.count), *(f"{v:.2f}s" if v is not None else "-" for v in (t.p50, t.p95, t.max))])
    columns = [
        Column("measure"),
        Column("turns", justify="right"),
        Column("p50", justify="right"),
        Column("p95", justify="right"),
        Column("max", 1, "right"),
    ]
    title = f"{snap.devices} devices, {snap.turns} turns, {snap.failed} failed ({100 * snap.failed_ratio:.1f}%) in {snap.elapsed:.0f}s"
    print_table(console, columns, rows, wide=wide, title=title + (" (interrupted)" if snap.interrupted else ""))
    if snap.failures:
        console.print(
            "failures: " + ", ".join(f"{kind} {n}" for kind, n in sorted(snap.failures.items())), markup=False
        )


@app.command()
def run(  # noqa: PLR0917 (each Typer option is a parameter)
    devices: int = typer.Option(4, "--devices", "-n", help="Emulated devices, each with its own session."),
    duration_: float = typer.Option("90s", "--duration", "-d", parser=duration, help="How long the load lasts."),
    ramp: float = typer.Option("0", "--ramp", parser=duration, help="Start the devices evenly over this time."),
    turn_every: float = typer.Option(
        f"{TURN_EVERY:g}s", "--turn-every", parser=duration, help="Mean time between a device's turns."
    ),
    arrivals: Arrivals = typer.Option(
        Arrivals.EVERY,
        "--arrivals",
        help="every: fixed pace, devices out of phase; poisson: random gaps; burst: all devices at once.",
    ),
    corpus: Path | None = typer.Option(
        None,
        "--corpus",
        help="Folder of 16-bit mono WAVs to speak. Default: built-in sentences spoken by espeak-ng (cached).",
    ),
    url: str | None = typer.Option(
        None, "--url", help="The node's WebSocket URL (ws://...). Default: the sandbox's real node."
    ),
    ota_url: str | None = typer.Option(
        None, "--ota-url", help="The node's OTA URL (http://...), where devices get their token."
    ),
    turn_timeout: float = typer.Option(
        f"{TURN_TIMEOUT:g}s", "--turn-timeout", parser=duration, help="A reply not complete by then is a failed turn."
    ),
    workers: int = typer.Option(
        0,
        "--workers",
        help="Local Locust worker processes (0: devices run in this process). Other machines: xzctl loadtest worker --master HOST:PORT.",
    ),
    remote_workers: int = typer.Option(
        0, "--remote-workers", help="Workers on other machines to wait for (xzctl loadtest worker --master HOST:PORT)."
    ),
    master_bind: str = typer.Option(
        "127.0.0.1:0",
        "--master-bind",
        help="HOST:PORT the master listens on for workers (0: any free port; local workers only need loopback).",
    ),
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        help="Serve the turn metrics on 127.0.0.1:PORT/metrics for Prometheus while the run lasts.",
    ),
    csv: str | None = typer.Option(
        None, "--csv", help="Also write Locust's CSV stats to PREFIX_stats.csv, PREFIX_failures.csv, ..."
    ),
    track: str = typer.Option("stable", "--track", help="The track label of the exported metrics (stable or canary)."),
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Run emulated devices against a node and print their turns' latency and failures.

    Example: xzctl loadtest run --devices 4 --duration 90s
    Example: xzctl loadtest run --url ws://127.0.0.1:8000/xiaozhi/v1/ --ota-url http://127.0.0.1:8003/xiaozhi/ota/ --arrivals poisson
    """
    ws, ota = _target(url, ota_url, state_dir)
    settings = LoadSettings(
        ws, ota, devices, duration_, ramp, turn_every, arrivals, str(corpus) if corpus else None, turn_timeout, track
    )
    check_workers(workers, remote_workers)
    bind = _host_port(master_bind, "--master-bind")
    load_corpus(settings.corpus)  # a bad corpus or no espeak-ng: one line before Locust starts
    from xzctl.loadtest.engine import RunOptions
    from xzctl.loadtest.engine import run as run_load

    options = RunOptions(workers, remote_workers, bind, metrics_port, csv, _progress(stderr))
    snap = run_load(settings, options)
    if stderr.is_terminal:
        stderr.print()
    emit(snap.to_json(), output, lambda console: print_summary(console, snap, wide=output is Output.WIDE))
    if snap.interrupted:
        raise typer.Exit(130)


@app.command()
def worker(
    master: str = typer.Option(
        ..., "--master", help="HOST:PORT of a `loadtest run --workers` master (its Locust port)."
    ),
) -> None:
    """Emulate devices for a master on another machine, until it ends its run.

    Example: xzctl loadtest worker --master 10.0.0.5:5557
    """
    host, port = _host_port(master, "--master")
    from xzctl.loadtest.engine import work

    work(host, port)


def _host_port(text: str, flag: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise BadInputError(f"{flag} {text!r} is not HOST:PORT")
    return host, int(port)
