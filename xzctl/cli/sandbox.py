"""`xzctl sandbox up|status|down|scenario`: a real Prometheus scraping the fleet simulator on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.checks.window import MIN_SCRAPES
from xzctl.cli._common import (
    FleetOption,
    Output,
    OutputOption,
    StateDirOption,
    duration,
    emit,
    parse_duration,
    stderr,
)
from xzctl.cli._layout import Column, print_table, summarise
from xzctl.cli._sandbox_view import print_summary, summary
from xzctl.errors import BadInputError, ConflictError, NoSandboxError, UnknownStateError
from xzctl.sandbox import (
    SandboxAlreadyUpError,
    SandboxInfo,
    SimulatorClient,
    default_state_dir,
    sandbox_status,
    start_sandbox,
    stop_sandbox,
    target_health,
)

app = typer.Typer(
    help="Run a local sandbox: the fleet simulator and a real Prometheus.\n\n"
    "Example: xzctl sandbox up --example --history 1d",
    no_args_is_help=True,
)


def _wait_for_verdicts(info: SandboxInfo, wait: bool) -> dict[str, Any]:
    """Until live checks can judge (or at once with --no-wait): when, and whether it is so already."""
    from xzctl.sandbox.ready import scraped_at, wait_scraped

    # A node down or scrapes slower than asked: say until when instead of waiting on.
    timeout = MIN_SCRAPES * info.scrape_interval_seconds + 30 if wait else 0.0
    ready = wait_scraped(info, MIN_SCRAPES, timeout) if wait else False
    return {"ready": ready, "from": scraped_at(info, MIN_SCRAPES), "scrapes": MIN_SCRAPES}


def _differences(
    info: SandboxInfo,
    *,
    fleet: Path | None,
    scale: int | None,
    seed: int,
    interval: int,
    history: timedelta | None,
    per_region: bool,
) -> list[str]:
    """What `up` asks for that the running sandbox does not have."""
    differs = []
    if scale is not None and (info.nodes != scale or Path(info.fleet_path).name != f"fleet-{scale}.yaml"):
        differs.append(f"it simulates {info.nodes} edge nodes of {info.fleet_path}, not --scale {scale}")
    if scale is None and fleet is not None and Path(info.fleet_path) != fleet.resolve():
        differs.append(f"its fleet is {info.fleet_path}")
    if info.seed != seed:
        differs.append(f"seed {info.seed}, not {seed}")
    if info.scrape_interval_seconds != interval:
        differs.append(f"scrape interval {info.scrape_interval_seconds} s, not {interval} s")
    if (history is None) != (info.history is None):
        differs.append("history " + ("backfilled" if info.history else "none"))
    if per_region != bool(info.global_url):
        differs.append("a Prometheus per region" if info.global_url else "one Prometheus")
    return differs


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
    force: bool = typer.Option(False, "--force", help="Start although an unfinished rollout used the last sandbox."),
    real_node: str | None = typer.Option(
        None, "--real-node", help="Run this edge node's VAD/ASR/TTS for real (built images, else the package)."
    ),
    kubernetes: bool = typer.Option(
        False, "--kubernetes", help="Also run a local Kubernetes (kwok nodes) the simulator follows; scripts/engine.sh."
    ),
    xiaozhi_source: Path | None = typer.Option(
        None,
        "--xiaozhi-source",
        envvar="XZCTL_XIAOZHI_SOURCE",
        help="With --real-node: also run the upstream xiaozhi server from this directory (main/xiaozhi-server).",
    ),
    server_processes: int | None = typer.Option(
        None,
        "--server-processes",
        help="With --xiaozhi-source: xiaozhi server processes behind the node's balancer (default: the node's "
        "processes scaled to this machine's cores).",
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Return once every edge node was scraped 3 times (live verdicts trustworthy)."
    ),
    per_region_prometheus: bool = typer.Option(
        False,
        "--per-region-prometheus",
        help="A Prometheus per region, each with a Thanos sidecar, under Thanos Query (scripts/engine.sh thanos).",
    ),
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Start the fleet simulator and a Prometheus scraping every edge node; print the Prometheus URL.

    Later commands (capacity, checks, canary analysis) default to this Prometheus while it runs. It returns
    when their verdicts can be trusted (3 scrapes of every edge node), or with --no-wait says from when.

    Example: xzctl sandbox up --scale 1000 --history 7d
    """
    span = timedelta(seconds=parse_duration(history, "--history")) if history else None
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
            force=force,
            real_node=real_node,
            kubernetes=kubernetes,
            xiaozhi_source=xiaozhi_source,
            per_region_prometheus=per_region_prometheus,
            server_processes=server_processes,
        )
    except SandboxAlreadyUpError as exc:
        info = exc.info
        differs = _differences(
            info,
            fleet=fleet,
            scale=scale,
            seed=seed,
            interval=scrape_interval,
            history=span,
            per_region=per_region_prometheus,
        )
        if differs:
            raise ConflictError(
                f"a sandbox with other options is up ({'; '.join(differs)})",
                hint=f"xzctl sandbox down first (state in {where})",
            ) from None
        stderr.print(f"sandbox already up with these options (state in {escape(str(where))})")
    data = summary(info, _wait_for_verdicts(info, wait))
    emit(data, output, lambda console: print_summary(console, data))


_TARGET_COLUMNS = [Column("edge node"), Column("region"), Column("health"), Column("last error", text=True)]
_REGION_COLUMNS = [Column("region"), Column("prometheus"), Column("sidecar"), Column("running")]
_HEALTH_STYLE = {"up": "green", "down": "red"}
_WORST_HEALTH = ["down", "unknown", "up"]


@app.command()
def status(state_dir: Path | None = StateDirOption, output: Output = OutputOption) -> None:
    """Show the sandbox's URLs, processes and the scrape health of every edge node.

    Example: xzctl sandbox status -o json
    """
    where = state_dir or default_state_dir()
    info = sandbox_status(where)
    if info is None:
        raise NoSandboxError(where)
    data = summary(info)
    running = all(data["running"].values())
    data["targets"] = target_health(info) if running else {}

    def table(console: Console) -> None:
        print_summary(console, data)
        regional = {name for region in data["regions"] for name in (f"prometheus-{region}", f"sidecar-{region}")}
        for name, alive in data["running"].items():
            if name not in regional:
                state = "[green]running[/]" if alive else "[red]not running[/]"
                console.print(f"{name:<11} pid {data['pids'][name]} {state}")
        wide = output is Output.WIDE
        if data["regions"]:
            print_table(console, _REGION_COLUMNS, _region_rows(data), wide=wide, title="Regions")
        targets = sorted(data["targets"].items())
        shown, left_out = summarise(targets, lambda t: t[1]["health"], _WORST_HEALTH, wide=wide, noun="targets")
        rows = [
            [
                node,
                t["region"],
                f"[{_HEALTH_STYLE.get(t['health'], 'yellow')}]{t['health']}[/]",
                escape(t["last_error"] or "-"),
            ]
            for node, t in shown
        ]
        if rows:
            print_table(console, _TARGET_COLUMNS, rows, wide=wide, title="Scrape targets", left_out=left_out)

    emit(data, output, table)
    if not running:
        raise UnknownStateError("the sandbox's processes are not all running", hint="xzctl sandbox down; then up")


def _region_rows(data: dict[str, Any]) -> list[list[str]]:
    """A region's Prometheus and sidecar URLs, and whether both run (with their pids)."""
    rows = []
    for region, stack in data["regions"].items():
        names = (f"prometheus-{region}", f"sidecar-{region}")
        up = all(data["running"][name] for name in names)
        pids = " ".join(str(data["pids"][name]) for name in names)
        rows.append(
            [
                region,
                escape(stack["prometheus_url"]),
                escape(stack["sidecar_url"]),
                f"[green]yes[/] (pids {pids})" if up else f"[red]no[/] (pids {pids})",
            ]
        )
    return rows


@app.command()
def down(state_dir: Path | None = StateDirOption) -> None:
    """Stop every process of the sandbox and remove its temp dirs; returns once each one is gone.

    Each process with all it started (its session) gets SIGTERM, then SIGKILL after 10 s; last started first.

    Example: xzctl sandbox down
    """
    where = state_dir or default_state_dir()
    if sandbox_status(where) is None:
        stderr.print("no sandbox is running")
        return
    stop_sandbox(where)
    stderr.print("sandbox stopped")


class Action(StrEnum):
    NODE_DOWN = "node-down"
    NODE_UP = "node-up"
    SET_DEVICES = "set-devices"
    IMAGE_PROFILE = "image-profile"
    DEPLOY = "deploy"
    METRICS_GAP = "metrics-gap"
    STALE = "stale"
    RESET = "reset"


@app.command()
def scenario(
    action: Action = typer.Argument(..., help="What to do to the simulated fleet."),
    *,
    node: str | None = typer.Option(None, "--node", help="Edge node id."),
    region: str | None = typer.Option(None, "--region", help="Region (set-devices with --utilization)."),
    devices: int | None = typer.Option(None, "--devices", help="Active devices (set-devices)."),
    utilization: float | None = typer.Option(None, "--utilization", help="Share of max_devices (set-devices)."),
    image: str | None = typer.Option(None, "--image", help="Image reference (image-profile, deploy)."),
    latency_factor: float | None = typer.Option(None, "--latency-factor", help="image-profile: latency x."),
    error_rate: float | None = typer.Option(None, "--error-rate", help="image-profile: share of failed requests."),
    service: str | None = typer.Option(
        None, "--service", help="deploy: vad, asr, llm, tts, xiaozhi_server (coordinator if the spec sets one)."
    ),
    track: str | None = typer.Option(None, "--track", help="deploy: stable or canary."),
    seconds: float | None = typer.Option(
        None,
        "--seconds",
        "--for",
        parser=duration,
        metavar="DURATION",
        help="metrics-gap: how long the endpoint fails (30s, 2m).",
    ),
    enabled: bool = typer.Option(True, "--enabled/--disabled", help="stale: freeze or unfreeze the exporter."),
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Play a scenario on the running sandbox: lose a node, overload a region, ship a bad canary.

    Example: xzctl sandbox scenario node-down --node bj-edge-01
    Example: xzctl sandbox scenario set-devices --region beijing --utilization 0.95
    Example: xzctl sandbox scenario image-profile --image reg/asr:1.1 --latency-factor 2 --error-rate 0.05
    """
    given = {
        "node": node,
        "region": region,
        "devices": devices,
        "utilization": utilization,
        "image": image,
        "latency_factor": latency_factor,
        "error_rate": error_rate,
        "service": service,
        "track": track,
        "seconds": seconds,
    }
    _require(action, given)
    where = state_dir or default_state_dir()
    info = sandbox_status(where)
    if info is None or not all(info.alive().values()):
        raise NoSandboxError(where)
    body: dict[str, Any] = {
        "action": action.value.replace("-", "_"),
        **{k: v for k, v in given.items() if v is not None},
    }
    if action is Action.STALE:
        body["enabled"] = enabled
    if action is Action.DEPLOY and image is None:
        body["image"] = None  # removes the canary track
    result = SimulatorClient(info.simulator_url).control(body)
    details = {k: v for k, v in result.items() if k not in ("ok", "action")}

    def line(console: Console) -> None:
        said = ", ".join(f"{k} {_plain(v)}" for k, v in details.items())
        console.print(f"{action.value}: done" + (f" ({said})" if said else ""), markup=False)

    emit(result, output, line)


def _plain(value: Any) -> str:
    """A scenario result value for people: `bj-edge-01 140, bj-edge-02 138` rather than a Python dict."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return "none" if value is None else str(value)


# The options each scenario needs, checked before the simulator is asked (it would say "edge node None").
_NEEDS: dict[Action, tuple[str, ...]] = {
    Action.NODE_DOWN: ("node",),
    Action.NODE_UP: ("node",),
    Action.IMAGE_PROFILE: ("image",),
    Action.DEPLOY: ("node", "service"),
    Action.METRICS_GAP: ("node", "seconds"),
    Action.STALE: ("node",),
}


def _require(action: Action, given: dict[str, Any]) -> None:
    missing = [f"--{name}" for name in _NEEDS.get(action, ()) if given[name] is None]
    if action is Action.SET_DEVICES:
        if given["node"] is None and given["region"] is None:
            missing.append("--node or --region")
        if given["devices"] is None and given["utilization"] is None:
            missing.append("--devices or --utilization")
    if missing:
        raise BadInputError(f"scenario {action.value} needs {' and '.join(missing)}")
