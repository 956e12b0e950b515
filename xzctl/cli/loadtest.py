"""`xzctl loadtest run|sweep|worker`: emulated devices speak the real protocol to a node and measure its turns."""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from xzctl.cli._common import Output, OutputOption, StateDirOption, duration, emit, option_set, stderr
from xzctl.cli._layout import Column, print_table
from xzctl.errors import BadInputError, NoSandboxError
from xzctl.loadtest.corpus import load_corpus
from xzctl.loadtest.settings import TURN_EVERY, TURN_TIMEOUT, Arrivals, LoadSettings, check_numbers, check_workers
from xzctl.loadtest.summary import FIRST_AUDIO, STT, TURN, Snapshot
from xzctl.state import atomic_write

if TYPE_CHECKING:
    from collections.abc import Callable

    from xzctl.spec.measured import CapacityProfile, CurvePoint

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
    server = (info.real_node or {}).get("xiaozhi") or {}
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


_URL = typer.Option(
    None, "--url", help="The node's WebSocket URL (ws://...). Default: the sandbox's real node.", show_default=False
)
_OTA_URL = typer.Option(
    None, "--ota-url", help="The node's OTA URL (http://...), where devices get their token.", show_default=False
)
_CORPUS = typer.Option(
    None,
    "--corpus",
    help="Folder of 16-bit mono WAVs to speak. Default: built-in sentences spoken by espeak-ng (cached).",
    show_default=False,
)
_TURN_EVERY = typer.Option(
    f"{TURN_EVERY:g}s", "--turn-every", parser=duration, help="Mean time between a device's turns."
)
_ARRIVALS = typer.Option(
    Arrivals.EVERY,
    "--arrivals",
    help="every: fixed pace, devices out of phase; poisson: random gaps; burst: all devices at once.",
)
_TURN_TIMEOUT = typer.Option(
    f"{TURN_TIMEOUT:g}s", "--turn-timeout", parser=duration, help="A reply not complete by then is a failed turn."
)


@dataclasses.dataclass(frozen=True)
class DeviceOptions:
    """What every run of emulated devices takes: the node, the speech, the pace and the turn's timeout."""

    url: str | None = _URL
    ota_url: str | None = _OTA_URL
    corpus: Path | None = _CORPUS
    turn_every: float = _TURN_EVERY
    arrivals: Arrivals = _ARRIVALS
    turn_timeout: float = _TURN_TIMEOUT
    state_dir: Path | None = StateDirOption

    def settings(self, devices: int, seconds: float, ramp: float = 0.0, track: str = "stable") -> LoadSettings:
        """Checked settings: the numbers and the corpus first (a usage error needs no node), then Locust is loaded
        (gevent must patch the process before anything imports requests/urllib3), then the target."""
        check_numbers(devices, seconds, ramp, self.turn_every, self.turn_timeout)
        corpus = str(self.corpus) if self.corpus else None
        load_corpus(corpus)
        given = self.url is not None or self.ota_url is not None

        def settings(target: tuple[str, str]) -> LoadSettings:
            ws, ota = target
            return LoadSettings(
                ws, ota, devices, seconds, ramp, self.turn_every, self.arrivals, corpus, self.turn_timeout, track
            )

        if given:  # the user's URLs are checked before Locust loads, as the numbers are
            checked = settings(_target(self.url, self.ota_url, None))
        import xzctl.loadtest.engine  # noqa: F401 - for its effect: gevent's monkey-patching, before the target's lookup

        return checked if given else settings(_target(None, None, self.state_dir))


@app.command()
@option_set(DeviceOptions, "device")
def run(  # noqa: PLR0917 (each Typer option is a parameter)
    device: DeviceOptions,
    devices: int = typer.Option(4, "--devices", "-n", help="Emulated devices, each with its own session."),
    duration_: float = typer.Option("90s", "--duration", "-d", parser=duration, help="How long the load lasts."),
    ramp: float = typer.Option("0", "--ramp", parser=duration, help="Start the devices evenly over this time."),
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
    output: Output = OutputOption,
) -> None:
    """Run emulated devices against a node and print their turns' latency and failures.

    Example: xzctl loadtest run --devices 4 --duration 90s
    Example: xzctl loadtest run --url ws://127.0.0.1:8000/xiaozhi/v1/ --ota-url http://127.0.0.1:8003/xiaozhi/ota/ --arrivals poisson
    Example: xzctl loadtest run --devices 400 --workers 2   (more devices than one process emulates)
    """
    check_workers(workers, remote_workers)
    bind = _host_port(master_bind, "--master-bind")
    settings = device.settings(devices, duration_, ramp, track)
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
@option_set(DeviceOptions, "device")
def sweep(  # noqa: PLR0917 (each Typer option is a parameter)
    device: DeviceOptions,
    node_class: str = typer.Option(
        ..., "--node-class", help="The class of node measured (a name the fleet's profiles use)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Where the capacity profile goes (a fleet spec names it in capacity.measured)."
    ),
    steps: str = typer.Option("1,2,3,4,6,8", "--steps", help="Concurrent devices per step, rising."),
    step_duration: float = typer.Option("120s", "--step-duration", parser=duration, help="How long each step lasts."),
    kpi: float = typer.Option(
        "3s", "--kpi", parser=duration, help="First-audio p95 a step must stay under (the seed's 3 s)."
    ),
    max_failed: float = typer.Option(
        0.001, "--max-failed", min=0.0, max=1.0, help="Failed turns a step may have (0.001 = 0.1 %)."
    ),
    workers: int = typer.Option(0, "--workers", help="Local Locust worker processes per step (a big node needs them)."),
    conditions: str = typer.Option(
        "", "--conditions", help="What else ran on the node during the sweep (recorded in the profile)."
    ),
    past_knee: int = typer.Option(
        1, "--past-knee", min=0, max=5, help="Steps to measure after the first that misses the KPI."
    ),
    server_processes: int | None = typer.Option(
        None,
        "--server-processes",
        min=1,
        help="xiaozhi server processes behind the node's balancer. Default: the sandbox real node's.",
    ),
    asr_path: str | None = typer.Option(
        None,
        "--asr-path",
        help="The ASR the server uses, e.g. 'openai-compatible: whisper base.en'. Default: the sandbox real node's.",
    ),
    image: list[str] | None = typer.Option(
        None, "--image", help="NAME=IMAGE of what serves the turns (repeatable). Default: the sandbox real node's."
    ),
    output: Output = OutputOption,
) -> None:
    """Raise concurrent devices step by step on one node and record its capacity: the knee under the KPI.

    Each step is a load test at one turn per device per --turn-every; the sweep stops at the first step that
    misses the KPI. A 16-core, 2-GPU node is measured the same way on that node, e.g.:
    xzctl loadtest sweep --url ws://NODE:8000/xiaozhi/v1/ --ota-url http://NODE:8003/xiaozhi/ota/
    --node-class edge-standard --steps 25,50,75,100,125,150,175,200 --step-duration 5m --workers 4 ...

    Example: xzctl loadtest sweep --node-class sandbox-2core --out capacity/sandbox-2core.yaml --steps 1,2,3,4
    """
    from xzctl.loadtest.sweep import Measured, SweepPlan, build_profile, parse_steps
    from xzctl.loadtest.sweep import sweep as run_sweep
    from xzctl.spec.measured import profile_document

    check_workers(workers, 0)
    plan = SweepPlan(parse_steps(steps), step_duration, kpi, max_failed, past_knee)
    base = device.settings(plan.steps[0], step_duration)
    what = Measured(
        node_class,
        *_served_by(device, image, asr_path, server_processes),
        shlex.join(["xzctl", *sys.argv[1:]]),
        conditions,
    )
    from xzctl.loadtest.engine import RunOptions
    from xzctl.loadtest.engine import run as run_load

    def step(settings: LoadSettings) -> Snapshot:
        stderr.print(f"step: {settings.devices} devices for {settings.duration:g}s", markup=False)
        return run_load(settings, RunOptions(workers=workers, progress=_progress(stderr)))

    curve, interrupted = run_sweep(base, plan, step, lambda p: stderr.print(_step_line(p), markup=False))
    if interrupted:
        stderr.print(f"interrupted: {len(curve)} step(s) measured, no profile written")
        raise typer.Exit(130)
    profile = build_profile(curve, plan, base, what)
    atomic_write(out, profile_document(profile))
    emit(
        profile.model_dump(mode="json"),
        output,
        lambda console: print_curve(console, profile, out, wide=output is Output.WIDE),
    )


def _served_by(
    device: DeviceOptions, images: list[str] | None, asr_path: str | None, processes: int | None
) -> tuple[dict[str, str], str, int]:
    """What served the turns (image versions, ASR path, server processes): the flags, else those of the
    sandbox real node's turn path (whose processes this machine runs)."""
    real: dict[str, Any] = {}
    if device.url is None:
        from xzctl.sandbox import default_state_dir, sandbox_status

        info = sandbox_status(device.state_dir or default_state_dir())
        real = (info.real_node if info else None) or {}
    given = dict(i.split("=", 1) for i in images or [] if "=" in i)
    if images and len(given) != len(images):
        raise BadInputError(
            "--image takes NAME=IMAGE, e.g. xiaozhi-server=registry.example/xiaozhi-server:0.9.6-1@sha256:..."
        )
    served = given or dict(real.get("images") or {})
    path = asr_path or real.get("asr_path")
    processes = processes or real.get("server_processes")
    if not served or not path or not processes:
        raise BadInputError(
            "say what served the turns: --image NAME=IMAGE, --asr-path TEXT and --server-processes N",
            hint="the profile records them",
        )
    return served, str(path), int(processes)


def _step_line(p: CurvePoint) -> str:
    fa = "-" if p.first_audio_p95 is None else f"{p.first_audio_p95:.2f}s"
    return f"step {p.devices} devices: {p.turns} turns, {p.failed} failed, first audio p95 {fa}"


def print_curve(console: Console, profile: CapacityProfile, out: Path, *, wide: bool) -> None:
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}s"

    rows = [
        [
            str(p.devices),
            str(p.turns),
            str(p.failed),
            s(p.first_audio_p50),
            s(p.first_audio_p95),
            s(p.stt_p95),
            s(p.turn_p95),
            "yes" if p.within(profile.kpi_first_audio_seconds, profile.max_failed_ratio) else "no",
        ]
        for p in profile.curve
    ]
    columns = [
        Column("devices", justify="right"),
        Column("turns", 2, "right"),
        Column("failed", justify="right"),
        Column("first audio p50", 1, "right"),
        Column("first audio p95", justify="right"),
        Column("stt p95", 2, "right"),
        Column("turn p95", 2, "right"),
        Column("within KPI"),
    ]
    title = f"{profile.node_class}: {profile.devices_per_node} devices per node (first audio p95 <= {profile.kpi_first_audio_seconds:g}s, failed <= {profile.max_failed_ratio:.1%})"
    print_table(console, columns, rows, wide=wide, title=title)
    console.print(f"profile written to {out}", markup=False)


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
