"""`xzctl rollout canary|status|resume|promote|abort`: node-by-node canaries gated on live metrics.

Exit codes: 0 promoted (or the asked action done), 1 rolled back, 3 aborted for missing data or paused
(no verdict), 5 another rollout holds the region.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xzctl.cli._common import FleetOption, Output, OutputOption, StateDirOption, emit, parse_duration, stderr
from xzctl.errors import BadInputError, CheckFailedError, ConflictError, UnknownStateError
from xzctl.images import check_reference, load_catalog
from xzctl.manifests.pins import ImagePins, spec_pins
from xzctl.prom import PrometheusClient
from xzctl.rollout.analysis import Analyzer
from xzctl.rollout.deploy import Deployer, SimulatorDeployer, StackDeployer
from xzctl.rollout.engine import RolloutEngine, Settings, analyzer_for, new_rollout, summarize
from xzctl.rollout.plan import normalise_service, plan_steps
from xzctl.rollout.state import RolloutState, StateStore, default_state_dir
from xzctl.sandbox import SimulatorClient, current_prometheus_url, sandbox_status
from xzctl.spec import load_fleet
from xzctl.spec.models import Environment

app = typer.Typer(help="Node-by-node canary rollouts of catalog images, judged on live metrics.", no_args_is_help=True)

PrometheusOption = typer.Option(
    None,
    "--prometheus",
    envvar="XZCTL_PROMETHEUS_URL",
    help="Prometheus URL. Default: the running sandbox's.",
    show_default=False,
)
IdArgument = typer.Argument(None, help="Rollout id (default: the latest unfinished one).", show_default=False)
ABORT_WAIT_SECONDS = 120.0  # how long `abort` waits for a running rollout to restore the previous images
COLOURS = {"success": "green", "failure": "red", "inconclusive": "yellow", "error": "magenta"}


def _live(kind: str, state: RolloutState, detail: dict[str, Any]) -> None:
    """Progress on stderr as it happens, so `--output json` keeps stdout for the final document."""
    stamp = time.strftime("%H:%M:%S")
    message = escape(str(detail.get("message", "")))
    if kind == "analysis":
        result = str(detail.get("result"))
        colour = COLOURS.get(result, "white")
        step = int(detail.get("step", 0)) + 1
        stderr.print(f"{stamp} step {step}/{len(state.steps)} [{colour}]{result}[/]: {message}")
    else:
        colour = {"rolled_back": "red", "aborted": "red", "promoted": "green", "paused": "yellow"}.get(kind, "cyan")
        stderr.print(f"{stamp} [{colour}]{kind}[/] {message}")


def _store(state_dir: Path | None) -> StateStore:
    return StateStore(state_dir if state_dir is not None else default_state_dir())


def build_deployer(config: dict[str, Any]) -> Deployer:
    """The deployer a rollout state names (so `resume` drives the same target as `canary` did)."""
    if config.get("kind") == "sandbox":
        client = SimulatorClient(str(config["simulator_url"]))
        return SimulatorDeployer(client.control, client.state, client.url)
    if config.get("kind") == "pulumi":
        template, fleet_path = str(config["stack"]), str(config["fleet"])
        fleet = load_fleet(fleet_path).fleet
        regions = {name: [n.id for n in region.edge_nodes] for name, region in fleet.regions.items()}
        if "{region}" not in template and len(regions) > 1:
            raise BadInputError(
                f"--stack {template!r} names one stack but the fleet has {len(regions)} regions",
                hint="use a template like org/xzctl/{region}",
            )
        # Imported only when a production rollout runs; checked before anything is recorded or deployed.
        from xzctl.provision import check_pulumi_cli, up
        from xzctl.provision.automation import check_passphrase

        check_pulumi_cli()
        check_passphrase()
        state_dir = config.get("state_dir")

        def update(region: str, pins: ImagePins) -> None:
            up(template.replace("{region}", region), fleet_path, pins=pins, state=state_dir)

        return StackDeployer(update, regions, {"stack": template, "fleet": fleet_path, "state_dir": state_dir})
    raise BadInputError(f"unknown deployer {config!r} in the rollout state")


def _analyzer(state: RolloutState) -> Analyzer:
    return analyzer_for(state, PrometheusClient(state.prometheus_url))


def _finish(state: RolloutState, store: StateStore, output: Output) -> None:
    data = summarize(store, state)
    emit(data, output, lambda console: _draw(console, data))
    if state.phase == "promoted":
        if state.deployer.get("kind") == "pulumi":
            stderr.print(
                f"next: set the {state.service} image to {escape(state.image)} in {escape(state.fleet)}; "
                "a provision from the spec would otherwise put the previous image back"
            )
        return
    if state.phase == "rolled_back" or (state.phase == "aborted" and state.cause != "missing_data"):
        raise CheckFailedError(f"rollout {state.id} {state.phase.replace('_', ' ')}: {state.reason}")
    if state.phase == "aborted":
        raise UnknownStateError(f"rollout {state.id} aborted: {state.reason}")
    if state.phase == "paused":
        raise UnknownStateError(
            f"rollout {state.id} paused: {state.reason}",
            hint=f"xzctl rollout {'promote' if state.cause == 'inconclusive' else 'resume'} {state.id} "
            f"or xzctl rollout abort {state.id}",
        )
    raise UnknownStateError(f"rollout {state.id} stopped while {state.phase}", hint=f"xzctl rollout resume {state.id}")


def _draw(console: Console, data: dict[str, Any]) -> None:
    phase = data["phase"] + (" (interrupted: no process drives it)" if data["interrupted"] else "")
    console.print(f"[bold]{data['id']}[/]: {data['service']} -> {escape(data['image'])}: [bold]{escape(phase)}[/]")
    if data["reason"]:
        console.print(f"  {escape(data['reason'])}")
    if data["pending_deploy"]:
        console.print(f"  [yellow]a {data['pending_deploy']} deploy may be half-applied; resume re-applies it[/]")
    steps = Table("#", "STEP", "REGION", "NODES", "STATUS", "CHECKS")
    for i, s in enumerate(data["steps"], 1):
        steps.add_row(str(i), s["name"], s["region"], ", ".join(s["nodes"]) or "-", s["status"], str(s["successes"]))
    console.print(steps)
    for node, why in data["skipped_nodes"].items():
        console.print(f"  [yellow]skipped[/] {node}: {escape(why)}")
    if data["analysis"]:
        results = Table("STEP", "RESULT", "DETAIL", title="last analysis results")
        for m in data["analysis"]:
            colour = COLOURS.get(m["result"], "white")
            results.add_row(str(m["step"] + 1), f"[{colour}]{m['result']}[/]", escape(m["reason"]))
        console.print(results)


@app.command()
def canary(
    service: str = typer.Argument(..., help="Service: vad, asr, tts, llm, xiaozhi-server, coordinator."),
    image: str = typer.Argument(..., help="Catalog image reference, e.g. registry.xiaozhi.example/inference/asr:1.2.0"),
    *,
    region: str | None = typer.Option(None, "--region", "-r", help="Region to start in (default: the first)."),
    interval: str = typer.Option("60s", "--interval", help="Time between analysis measurements."),
    checks: int = typer.Option(5, "--checks", help="Successful measurements each step needs."),
    on_unreachable: str = typer.Option(
        "skip", "--on-unreachable", help="An unreachable edge node: skip it (keeps its image) or hold the rollout."
    ),
    window: str | None = typer.Option(None, "--window", help="PromQL rate window (default: two intervals)."),
    deployer: str = typer.Option(
        "auto", "--deployer", help="sandbox (the simulator), pulumi (stack update), auto: sandbox if one runs."
    ),
    stack: str = typer.Option(
        "{region}", "--stack", help="Pulumi stack of a region (pulumi deployer); {region} is replaced."
    ),
    fleet: Path | None = FleetOption,
    catalog: Path | None = typer.Option(None, "--catalog", envvar="XZCTL_CATALOG", help="Image catalog directory."),
    prometheus: str | None = PrometheusOption,
    state_dir: Path | None = StateDirOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the steps and stop: nothing is deployed or recorded."),
    output: Output = OutputOption,
) -> None:
    """Roll IMAGE out for SERVICE: one edge node, then the rest of its region, then the other regions, each step
    judged on live metrics (error rate, p95 latency, inference errors: canary vs KPI and vs stable). A failed
    analysis rolls every node back automatically.

    Example: xzctl rollout canary asr registry.xiaozhi.example/inference/asr:1.2.0 --region beijing --interval 60s --checks 5
    """
    store = _store(state_dir)
    sandbox = sandbox_status(store.root)
    sandbox_up = sandbox is not None and all(sandbox.alive().values())
    kind = ("sandbox" if sandbox_up else "pulumi") if deployer == "auto" else deployer
    if kind == "sandbox" and not sandbox_up:
        raise BadInputError(f"no sandbox runs in {store.root}", hint="xzctl sandbox up, or --deployer pulumi")
    if fleet is None and kind == "sandbox" and sandbox is not None:
        fleet = Path(sandbox.fleet_path)
    loaded = load_fleet(fleet)
    name = normalise_service(service)
    production = loaded.fleet.metadata.environment is Environment.PRODUCTION
    model = loaded.fleet.edge_nodes()[0].services.inference().get(name)
    check_reference(load_catalog(catalog), image, name, production=production, model=model.model if model else None)
    settings = Settings(
        interval_seconds=parse_duration(interval, "--interval"),
        checks=checks,
        on_unreachable=on_unreachable,
        window_seconds=parse_duration(window, "--window") if window else None,
    ).validated()
    if dry_run:
        steps = plan_steps(loaded.fleet, name, region)
        plan: dict[str, Any] = {
            "service": name,
            "image": image,
            "settings": {**vars(settings), "window_seconds": settings.window},
            "steps": [{"name": s.name, "region": s.region, "nodes": s.nodes} for s in steps],
        }

        def table(console: Console) -> None:
            console.print(f"{name} -> {escape(image)}: {len(steps)} steps, {settings.checks} checks each")
            for i, s in enumerate(steps, 1):
                console.print(f"  {i}. {s.name}: canary on {', '.join(s.nodes)}")
            console.print("  then promote: the new image becomes stable on every node that took the canary")

        emit(plan, output, table)
        return
    if kind == "sandbox":
        assert sandbox is not None
        target: Deployer = build_deployer({"kind": "sandbox", "simulator_url": sandbox.simulator_url})
    elif kind == "pulumi":
        pulumi = {"kind": "pulumi", "stack": stack, "fleet": loaded.source, "state_dir": str(store.root)}
        target = build_deployer(pulumi)
    else:
        raise BadInputError(f"--deployer must be auto, sandbox or pulumi, not {deployer!r}")
    url = prometheus or current_prometheus_url(store.root)
    if not url:
        raise BadInputError("no Prometheus to judge the canary", hint="pass --prometheus URL or start a sandbox")
    baseline = target.current() or spec_pins(loaded.fleet)
    state = new_rollout(
        loaded.fleet,
        loaded.source,
        name,
        image,
        baseline=baseline,
        settings=settings,
        deployer=target,
        prometheus_url=url,
        first_region=region,
    )
    engine = RolloutEngine(store, state, target, _analyzer(state), on_event=_live)
    try:
        final = engine.start()
    except KeyboardInterrupt:
        stderr.print(
            f"rollout {state.id} interrupted; its canary stays as recorded: "
            f"xzctl rollout resume {state.id}  or  xzctl rollout abort {state.id}"
        )
        raise
    _finish(final, store, output)


def _engine(store: StateStore, rollout_id: str | None) -> RolloutEngine:
    state = store.load(rollout_id) if rollout_id else store.latest()
    return RolloutEngine(store, state, build_deployer(state.deployer), _analyzer(state), on_event=_live)


@app.command()
def status(
    rollout_id: str | None = typer.Argument(None, help="Rollout id (default: list every rollout)."),
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Show one rollout (steps, skipped nodes, last analysis results) or list them all. Works after a crash.

    Example: xzctl rollout status asr-20261124t214500z-1a2b -o json
    """
    store = _store(state_dir)
    if rollout_id:
        data = summarize(store, store.load(rollout_id))
        emit(data, output, lambda console: _draw(console, data))
        return
    rows = [summarize(store, s, analyses=1) for s in store.all()]

    def table(console: Console) -> None:
        t = Table("ID", "SERVICE", "IMAGE", "PHASE", "STEP", "DRIVER", title=f"rollouts in {store.dir}")
        for r in rows:
            driver = f"pid {r['driver_pid']}" if r["driver_pid"] else ("interrupted" if r["interrupted"] else "-")
            t.add_row(r["id"], r["service"], escape(r["image"]), r["phase"], f"{r['step']}/{len(r['steps'])}", driver)
        console.print(t)

    emit(rows, output, table)


@app.command()
def resume(
    rollout_id: str | None = IdArgument, state_dir: Path | None = StateDirOption, output: Output = OutputOption
) -> None:
    """Carry on an interrupted (killed) or held rollout from its recorded step; a half-done deploy is re-applied.

    Example: xzctl rollout resume asr-20261124t214500z-1a2b
    """
    store = _store(state_dir)
    engine = _engine(store, rollout_id)
    _finish(engine.resume(), store, output)


@app.command()
def promote(
    rollout_id: str | None = IdArgument,
    full: bool = typer.Option(False, "--full", help="Skip the remaining steps: promote on every planned node now."),
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Accept the step an inconclusive analysis paused on and carry on with the next steps.

    Example: xzctl rollout promote asr-20261124t214500z-1a2b --full
    """
    store = _store(state_dir)
    engine = _engine(store, rollout_id)
    _finish(engine.promote(full=full), store, output)


@app.command()
def abort(
    rollout_id: str | None = IdArgument,
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Stop a rollout and restore the previous images on every node that got the new one.

    Works on a running rollout (it is asked to stop and restores itself) and on an interrupted one.

    Example: xzctl rollout abort asr-20261124t214500z-1a2b
    """
    store = _store(state_dir)
    state = store.load(rollout_id) if rollout_id else store.latest()
    if state.terminal:
        raise BadInputError(f"rollout {state.id} is already {state.phase}")
    driver = store.driver(state)
    if driver is not None:
        store.request_abort(state.id, "aborted by the operator")
        stderr.print(f"asked pid {driver.pid} to abort {state.id}; waiting for it to restore the previous images")
        deadline = time.monotonic() + ABORT_WAIT_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.5)
            state = store.load(state.id)
            if state.terminal or store.driver(state) is None:
                break
        if not state.terminal and store.driver(state) is not None:
            raise ConflictError(
                f"pid {driver.pid} did not finish aborting {state.id} within {ABORT_WAIT_SECONDS:g}s",
                hint="check that process; then run abort again",
            )
    if not state.terminal:
        engine = RolloutEngine(store, state, build_deployer(state.deployer), _analyzer(state), on_event=_live)
        state = engine.abort()
    data = summarize(store, state)
    emit(data, output, lambda console: _draw(console, data))
