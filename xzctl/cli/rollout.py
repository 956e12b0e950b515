"""`xzctl rollout canary|status|resume|promote|abort`: node-by-node canaries gated on live metrics."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xzctl.cli._common import FleetOption, Output, OutputOption, StateDirOption, emit, parse_duration, stderr
from xzctl.cli.check import URL_ENV, BasicAuthOption, BearerTokenOption, HeaderOption, _headers
from xzctl.errors import BadInputError, CheckFailedError, ConflictError, UnknownStateError
from xzctl.images import check_reference, load_catalog
from xzctl.manifests.pins import ImagePins, spec_pins
from xzctl.prom import PrometheusClient
from xzctl.rollout.analysis import Analyzer, split_credentials, thresholds_from_fleet
from xzctl.rollout.deploy import Deployer, SimulatorDeployer, StackDeployer, choose_deployer
from xzctl.rollout.engine import RolloutEngine, force_abort, new_rollout, summarize
from xzctl.rollout.plan import METRIC_SERVICE, normalise_service, plan_steps
from xzctl.rollout.specpin import write_pin
from xzctl.rollout.state import EXIT_CODES, TERMINAL, Phase, RolloutState, Settings, StateStore
from xzctl.sandbox import SandboxInfo, SimulatorClient, current_prometheus_url, sandbox_status
from xzctl.spec import load_fleet

HELP = """Node-by-node canary rollouts of catalog images, judged on live metrics.

Phases: progressing -> promoted | partial | rolled_back | aborted; paused (inconclusive analysis or a held node: promote, resume or abort); rolling_back / aborting while the previous images go back.

Exit codes: 0 promoted on every planned node; 1 rolled back (the canary was worse, or a deploy failed); 3 aborted (operator, or missing data), paused, or partial (some nodes left on the previous image, named with the command that converges them); 5 an edge node is locked by another rollout.

Fail closed: a step passes only on --checks successful measurements, each over samples taken after its deploy and the image's warm-up; no data, NaN or an unscraped node counts as an error, and more errors in a row than the limit abort the rollout. Nodes are left out only with --skip-node.

Locks: a rollout locks every edge node it may change; a second rollout on any of them is refused (exit 5) until the first ends, even if its process died: resume or abort it. Rollouts on disjoint nodes run.

--force (abort): when the deploy target is gone (a replaced sandbox, a deleted cluster), mark the rollout aborted without deploying and release its locks; then check the nodes by hand.
"""

app = typer.Typer(help=HELP, no_args_is_help=True)

PrometheusOption = typer.Option(
    None,
    "--prometheus",
    help=f"Prometheus URL (credentials in it are used, never shown). Default: the running sandbox's, else ${URL_ENV}.",
    show_default=False,
)
IdArgument = typer.Argument(None, help="Rollout id (default: the latest unfinished one).", show_default=False)
AcceptSpecOption = typer.Option(
    False, "--accept-spec-change", help="Carry on although the fleet spec changed since the rollout started."
)
WriteSpecOption = typer.Option(
    None,
    "--write-spec/--no-write-spec",
    help="Once promoted, pin the image in the fleet spec (comment-preserving). Default: ask on a terminal.",
    show_default=False,
)
ABORT_WAIT_SECONDS = 120.0  # how long `abort` waits for a running rollout to restore the previous images
WATCH_MAX_SECONDS = 24 * 3600.0
COLOURS = {"success": "green", "failure": "red", "inconclusive": "yellow", "error": "magenta"}
SETTLED = {p.value for p in TERMINAL} | {Phase.PAUSED.value}
PHASE_COLOURS = {"rolled_back": "red", "aborted": "red", "promoted": "green", "paused": "yellow", "partial": "yellow"}


def _live(kind: str, state: RolloutState, detail: dict[str, Any]) -> None:
    """Progress on stderr as it happens, so `--output json` keeps stdout for the final document."""
    stamp = time.strftime("%H:%M:%S")
    message = escape(str(detail.get("message", "")))
    if kind == "analysis":
        result = str(detail.get("result"))
        step = int(detail.get("step", 0)) + 1
        stderr.print(f"{stamp} step {step}/{len(state.steps)} [{COLOURS.get(result, 'white')}]{result}[/]: {message}")
    else:
        stderr.print(f"{stamp} [{PHASE_COLOURS.get(kind, 'cyan')}]{kind}[/] {message}")


def _sandbox_instance(info: SandboxInfo) -> str:
    return f"{info.started_at:.3f}/{info.pids.get('simulator', 0)}"


def build_deployer(config: dict[str, Any], store: StateStore, rollout_id: str = "") -> Deployer:
    """The deployer a rollout state names (so `resume` drives the same target as `canary` did)."""
    force = f"xzctl rollout abort {rollout_id} --force" if rollout_id else "xzctl sandbox up"
    if config.get("kind") == "sandbox":
        info = sandbox_status(store.root)
        now = _sandbox_instance(info) if info is not None and all(info.alive().values()) else None
        if config.get("instance") and now != config["instance"]:
            raise UnknownStateError(
                f"the sandbox this rollout deploys to ({config['simulator_url']}) is gone"
                + (" (another sandbox runs now)" if now else ""),
                hint=f"nothing can restore its nodes: {force}",
            )
        client = SimulatorClient(str(config["simulator_url"]))
        return SimulatorDeployer(client.control, client.state, client.url, str(config.get("instance", "")))
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
    raise BadInputError(f"unknown deployer {config!r} in the rollout state", hint=force)


def _client(url: str, bearer_token: str | None, basic_auth: str | None, header: list[str] | None) -> PrometheusClient:
    """A client whose URL carries no credentials: they go in headers, so no message can show them."""
    clean, auth = split_credentials(url)
    if basic_auth:  # the flag wins over credentials in the URL
        user, sep, password = basic_auth.partition(":")
        if not sep:
            raise BadInputError("--basic-auth must be USER:PASSWORD")
        auth = (user, password)
    return PrometheusClient(clean, bearer_token=bearer_token, basic_auth=auth, headers=_headers(header))


def _analyzer(state: RolloutState, client: PrometheusClient) -> Analyzer:
    return Analyzer(client, METRIC_SERVICE[state.service], state.thresholds)


def _offer_spec_pin(state: RolloutState, write_spec: bool | None) -> None:
    if state.phase != Phase.PROMOTED:
        return
    if write_spec is None and sys.stdin.isatty() and sys.stderr.isatty():
        write_spec = typer.confirm(f"pin {state.image} for {state.service} in {state.fleet}?", default=False, err=True)
    if not write_spec:
        stderr.print(
            f"next: pin {escape(state.image)} for {state.service} in {escape(state.fleet)} "
            f"(or rerun with --write-spec); a provision from the spec would otherwise put the previous image back"
        )
        return
    old = {pin["stable"] for node, pins in state.baseline.items() if node in state.nodes for s, pin in pins.items()
           if s == state.service}  # fmt: skip
    changed = write_pin(Path(state.fleet), state.service, old, state.image)
    stderr.print(f"pinned {escape(state.image)} in {escape(state.fleet)}: {', '.join(changed)}")


def _finish(state: RolloutState, store: StateStore, output: Output, write_spec: bool | None = False) -> None:
    data = summarize(store, state)
    emit(data, output, lambda console: _draw(console, data))
    _offer_spec_pin(state, write_spec)
    code = EXIT_CODES[state.phase]
    if code == 0:
        return
    if code == CheckFailedError.exit_code:
        raise CheckFailedError(f"rollout {state.id} rolled back: {state.reason}")
    hint = f"xzctl rollout abort {state.id}"
    if state.phase == Phase.PAUSED:
        verb = "promote" if state.cause == "inconclusive" else "resume"
        hint = f"xzctl rollout {verb} {state.id} or xzctl rollout abort {state.id}"
    elif not state.terminal:
        hint = f"xzctl rollout resume {state.id} or {hint}"
    elif state.phase == Phase.PARTIAL:
        hint = "converge the nodes left behind with the command above"
    else:
        hint = ""
    raise UnknownStateError(
        f"rollout {state.id} {state.phase.value.replace('_', ' ')}: {state.reason}", hint=hint or None
    )


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h" if seconds < 172800 else f"{seconds / 86400:.0f}d"


def _draw(console: Console, data: dict[str, Any]) -> None:
    phase = data["phase"] + (" (interrupted: no process drives it)" if data["interrupted"] else "")
    console.print(f"[bold]{data['id']}[/]: {data['service']} -> {escape(data['image'])}", soft_wrap=True)
    colour = PHASE_COLOURS.get(data["phase"], "cyan")
    console.print(f"  [{colour}]{escape(phase)}[/] (exit {data['exit_code']}), age {_age(data['age_seconds'])}")
    if data["reason"]:
        console.print(f"  {escape(data['reason'])}", soft_wrap=True)
    if data["pending_deploy"]:
        console.print(f"  [yellow]a {data['pending_deploy']} deploy may be half-applied[/]")
    steps = Table("#", "STEP", "NODES", "STATUS", "CHECKS")
    for i, s in enumerate(data["steps"], 1):
        steps.add_row(str(i), s["name"], ", ".join(s["nodes"]) or "-", s["status"], str(s["successes"]))
    console.print(steps)
    for node, why in data["skipped_nodes"].items():
        console.print(f"  [yellow]left out[/] {node}: {escape(why)}")
    if data["analysis"]:
        results = Table("STEP", "RESULT", "DETAIL", title="last analysis results")
        for m in data["analysis"]:
            results.add_row(
                str(m["step"] + 1), f"[{COLOURS.get(m['result'], 'white')}]{m['result']}[/]", escape(m["reason"])
            )
        console.print(results)


def _settings(**values: Any) -> Settings:
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        unit = " (in seconds)" if field.endswith("_seconds") else ""
        flag = field.removesuffix("_seconds").replace("_", "-")
        raise BadInputError(f"--{flag}: {exc.errors()[0]['msg']}{unit}") from None
    return settings.model_copy(update={"window_seconds": settings.window})  # recorded resolved, not as "default"


def _skips(values: list[str] | None) -> dict[str, str]:
    """`NODE` or `NODE=why` -> {node: why}."""
    out: dict[str, str] = {}
    for value in values or []:
        node, _, why = value.partition("=")
        out[node.strip()] = why.strip() or "--skip-node"
    return out


@app.command()
def canary(
    service: str = typer.Argument(..., help="Service: vad, asr, tts, llm, xiaozhi-server, coordinator."),
    image: str = typer.Argument(..., help="Catalog image reference, e.g. registry.xiaozhi.example/inference/asr:1.2.0"),
    *,
    region: str | None = typer.Option(None, "--region", "-r", help="Region to start in (default: the first)."),
    node: list[str] | None = typer.Option(None, "--node", help="Roll out only to these edge nodes (repeatable)."),
    skip_node: list[str] | None = typer.Option(
        None, "--skip-node", help="Leave NODE (or NODE=why) on its image; the rollout then ends partial (repeatable)."
    ),
    interval: str = typer.Option("60s", "--interval", help="Time between analysis measurements."),
    checks: int = typer.Option(5, "--checks", help="Successful measurements each step needs."),
    on_unreachable: str = typer.Option(
        "wait",
        "--on-unreachable",
        help="A node not scraped: wait (count errors, abort past the limit) or hold (pause).",
    ),
    error_limit: int = typer.Option(4, "--error-limit", help="Measurements without a verdict tolerated in a row."),
    window: str | None = typer.Option(None, "--window", help="PromQL rate window (default: two intervals)."),
    warmup: str | None = typer.Option(
        None, "--warmup", help="Ignore samples this long after each deploy (default: the image's, from the catalog)."
    ),
    deployer: str | None = typer.Option(
        None, "--deployer", help="sandbox or pulumi. Default: pulumi for a production spec, else the sandbox."
    ),
    stack: str = typer.Option(
        "{region}", "--stack", help="Pulumi stack of a region (pulumi deployer); {region} is replaced."
    ),
    fleet: Path | None = FleetOption,
    catalog: Path | None = typer.Option(None, "--catalog", envvar="XZCTL_CATALOG", help="Image catalog directory."),
    prometheus: str | None = PrometheusOption,
    bearer_token: str | None = BearerTokenOption,
    basic_auth: str | None = BasicAuthOption,
    header: list[str] | None = HeaderOption,
    state_dir: Path | None = StateDirOption,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would happen and stop: nothing is deployed or recorded."
    ),
    write_spec: bool | None = WriteSpecOption,
    output: Output = OutputOption,
) -> None:
    """Roll IMAGE out for SERVICE: one edge node, then the rest of its region, then the other regions, each step
    judged on live metrics (error rate, p95 latency, inference errors: canary vs KPI and vs stable). A failed
    analysis rolls every node back automatically.

    Example: xzctl rollout canary asr registry.xiaozhi.example/inference/asr:1.2.0 --region beijing --interval 60s --checks 5
    """
    import os

    store = StateStore(state_dir)
    sandbox = sandbox_status(store.root)
    sandbox_up = sandbox is not None and all(sandbox.alive().values())
    if fleet is None and deployer != "pulumi" and sandbox_up and sandbox is not None:
        fleet = Path(sandbox.fleet_path)
    loaded = load_fleet(fleet)
    kind = choose_deployer(deployer, loaded.fleet.metadata.environment.value, sandbox_up)
    name = normalise_service(service)
    production = loaded.fleet.metadata.environment.value == "production"
    model = loaded.fleet.edge_nodes()[0].services.inference().get(name)
    known = load_catalog(catalog)
    check_reference(known, image, name, production=production, model=model.model if model else None)
    from xzctl.images.catalog import ImageRef

    listed = known.by_repository(ImageRef.parse(image).repository)
    image_warmup = listed.info.warmup_seconds if listed is not None else 0
    settings = _settings(
        interval_seconds=parse_duration(interval, "--interval"),
        checks=checks,
        on_unreachable=on_unreachable,
        error_limit=error_limit,
        window_seconds=parse_duration(window, "--window") if window else 0.0,
        warmup_seconds=parse_duration(warmup, "--warmup") if warmup else float(image_warmup),
    )
    skips = _skips(skip_node)
    steps = plan_steps(loaded.fleet, name, region, only=node, skip=list(skips))
    thresholds = thresholds_from_fleet(loaded.fleet, METRIC_SERVICE[name])
    sandbox_url = current_prometheus_url(store.root)
    url = prometheus or sandbox_url or os.environ.get(URL_ENV) or ""
    shown_url = split_credentials(url)[0] if url else "(none: pass --prometheus)"
    target_name = "the sandbox simulator" if kind == "sandbox" else f"Pulumi stacks {stack}"
    plan: dict[str, Any] = {
        "service": name,
        "image": image,
        "deployer": kind,
        "prometheus": shown_url,
        "fleet": loaded.source,
        "settings": settings.model_dump(),
        "thresholds": thresholds.model_dump(),
        "node_order": [n for s in steps for n in s.nodes],
        "skipped_nodes": skips,
        "steps": [{"name": s.name, "region": s.region, "nodes": s.nodes} for s in steps],
    }
    t = thresholds
    stderr.print(
        f"{name} -> {escape(image)}: deployer {kind} ({target_name}), Prometheus {escape(shown_url)}; "
        f"{len(steps)} steps x {settings.checks} checks every {settings.interval_seconds:g}s "
        f"(window {settings.window:g}s, warm-up {settings.warmup_seconds:g}s); thresholds: errors {t.error_ratio:.3%}, "
        f"p95 {t.p95_seconds * 1000:.0f} ms, inference errors {t.inference_error_ratio:.3%}; "
        f"node order {', '.join(plan['node_order'])}",
        soft_wrap=True,
    )
    if dry_run:

        def table(console: Console) -> None:
            for i, s in enumerate(steps, 1):
                console.print(f"  {i}. {s.name}: canary on {', '.join(s.nodes)}")
            console.print("  then promote: the new image becomes stable on every node that took the canary")
            for n, why in skips.items():
                console.print(f"  left out: {n} ({escape(why)}): the rollout would end partial")

        emit(plan, output, table)
        return
    if not url:
        raise BadInputError(
            "no Prometheus to judge the canary", hint=f"pass --prometheus URL, set ${URL_ENV}, or start a sandbox"
        )
    if kind == "sandbox":
        assert sandbox is not None
        config = {"kind": "sandbox", "simulator_url": sandbox.simulator_url, "instance": _sandbox_instance(sandbox)}
    else:
        config = {"kind": "pulumi", "stack": stack, "fleet": loaded.source, "state_dir": str(store.root)}
    target = build_deployer(config, store)
    client = _client(url, bearer_token, basic_auth, header)
    baseline = target.current() or spec_pins(loaded.fleet)
    used = [kind for kind, given in (("credentials in the URL", split_credentials(url)[1]), ("--bearer-token",
            bearer_token), ("--basic-auth", basic_auth), ("--header", header)) if given]  # fmt: skip
    state = new_rollout(
        loaded.fleet, loaded.source, name, image, rollout_id=store.new_id(name), baseline=baseline, settings=settings,
        thresholds=thresholds, deployer=target, prometheus_url=split_credentials(url)[0], first_region=region,
        only_nodes=node, skip_nodes=skips,
    )  # fmt: skip
    state.prometheus_auth = used
    engine = RolloutEngine(store, state, target, _analyzer(state, client), on_event=_live)
    try:
        final = engine.start()
    except KeyboardInterrupt:
        stderr.print(
            f"rollout {state.id} interrupted; its canary stays as recorded: "
            f"xzctl rollout resume {state.id}  or  xzctl rollout abort {state.id}"
        )
        raise
    _finish(final, store, output, write_spec)


def _engine(
    store: StateStore,
    rollout_id: str | None,
    auth: tuple[str | None, str | None, list[str] | None],
    state: RolloutState | None = None,
    *,
    analysis: bool = True,
) -> RolloutEngine:
    """The engine of a recorded rollout; `analysis` False (abort) needs no Prometheus credentials."""
    state = state or (store.load(rollout_id) if rollout_id else store.latest())
    if analysis and state.prometheus_auth and not any(auth) and not state.terminal:
        raise BadInputError(
            f"rollout {state.id} was started with Prometheus credentials ({', '.join(state.prometheus_auth)}), "
            "which are never recorded",
            hint="pass them again: --bearer-token / --basic-auth / --header, or $XZCTL_PROMETHEUS_TOKEN",
        )
    deployer = build_deployer(state.deployer, store, state.id)
    return RolloutEngine(store, state, deployer, _analyzer(state, _client(state.prometheus_url, *auth)), on_event=_live)


def _status_rows(store: StateStore, rollout_id: str | None) -> list[dict[str, Any]]:
    if rollout_id:
        return [summarize(store, store.load(rollout_id))]
    return [summarize(store, s, analyses=1) for s in store.all()]


def _draw_list(console: Console, rows: list[dict[str, Any]], where: Path) -> None:
    width = max([len(r["id"]) for r in rows] + [2])
    table = Table(title=f"rollouts in {where}")
    table.add_column("ID", no_wrap=True, min_width=width)  # never cut: the operator needs it to act
    table.add_column("SERVICE", no_wrap=True)
    table.add_column("PHASE", no_wrap=True)
    table.add_column("STEPS", no_wrap=True)
    table.add_column("AGE", no_wrap=True)
    table.add_column("DRIVER", overflow="fold")
    for r in rows:
        driver = f"pid {r['driver_pid']}" if r["driver_pid"] else ("interrupted" if r["interrupted"] else "-")
        table.add_row(r["id"], r["service"], r["phase"], r["progress"], _age(r["age_seconds"]), driver)
    console.print(table)


@app.command()
def status(
    rollout_id: str | None = typer.Argument(None, help="Rollout id (default: list every rollout)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Redraw until the rollout(s) end (NDJSON with -o json)."),
    every: str = typer.Option("2s", "--every", help="How often --watch redraws."),
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Show one rollout (steps, nodes left out, last analysis results) or list them all, with age and progress.

    Example: xzctl rollout status asr-7xk2p -o json
    """
    store = StateStore(state_dir)
    period = parse_duration(every, "--every")
    if period < 0.1:
        raise BadInputError("--every must be at least 100ms")
    deadline = time.monotonic() + WATCH_MAX_SECONDS
    if not rollout_id:
        for path, why in store.unreadable().items():
            stderr.print(f"[yellow]warning:[/] skipped {escape(path)}: {escape(why)}", soft_wrap=True)
    for _ in range(int(WATCH_MAX_SECONDS / period) + 1):
        rows = _status_rows(store, rollout_id)
        _show(rows, rollout_id, store, output, watch=watch)
        settled = all(r["phase"] in SETTLED for r in rows)  # nothing changes without the operator
        if not watch or settled or time.monotonic() > deadline:
            return
        time.sleep(period)


def _show(
    rows: list[dict[str, Any]], rollout_id: str | None, store: StateStore, output: Output, *, watch: bool
) -> None:
    """One rendering: a document (or one NDJSON line per redraw under --watch), or tables under a timestamp."""
    data: Any = rows[0] if rollout_id else rows
    if watch and output is Output.JSON:
        sys.stdout.write(json.dumps({"at": time.time(), "rollouts": rows}, default=str) + "\n")
        sys.stdout.flush()
        return

    def draw(console: Console) -> None:
        if watch:
            console.print(f"[dim]{time.strftime('%Y-%m-%d %H:%M:%S')}[/]")
        if rollout_id:
            _draw(console, rows[0])
        else:
            _draw_list(console, rows, store.dir)

    emit(data, output, draw)


@app.command()
def resume(
    rollout_id: str | None = IdArgument,
    *,
    accept_spec_change: bool = AcceptSpecOption,
    bearer_token: str | None = BearerTokenOption,
    basic_auth: str | None = BasicAuthOption,
    header: list[str] | None = HeaderOption,
    state_dir: Path | None = StateDirOption,
    write_spec: bool | None = WriteSpecOption,
    output: Output = OutputOption,
) -> None:
    """Carry on an interrupted (killed) or held rollout from its recorded step.

    A half-done deploy is re-applied only when the phase allows it: a rollout going back only ever restores.

    Example: xzctl rollout resume asr-7xk2p
    """
    store = StateStore(state_dir)
    engine = _engine(store, rollout_id, (bearer_token, basic_auth, header))
    _finish(engine.resume(accept_spec_change=accept_spec_change), store, output, write_spec)


@app.command()
def promote(
    rollout_id: str | None = IdArgument,
    *,
    full: bool = typer.Option(False, "--full", help="Skip the remaining steps: promote on every planned node now."),
    accept_spec_change: bool = AcceptSpecOption,
    bearer_token: str | None = BearerTokenOption,
    basic_auth: str | None = BasicAuthOption,
    header: list[str] | None = HeaderOption,
    state_dir: Path | None = StateDirOption,
    write_spec: bool | None = WriteSpecOption,
    output: Output = OutputOption,
) -> None:
    """Accept the step an inconclusive analysis paused on and carry on with the next steps.

    Once promoted, offers to pin the image in the fleet spec so the next provision keeps it.

    Example: xzctl rollout promote asr-7xk2p --full --write-spec
    """
    store = StateStore(state_dir)
    engine = _engine(store, rollout_id, (bearer_token, basic_auth, header))
    _finish(engine.promote(full=full, accept_spec_change=accept_spec_change), store, output, write_spec)


@app.command()
def abort(
    rollout_id: str | None = IdArgument,
    *,
    force: bool = typer.Option(
        False, "--force", help="The deploy target is gone: mark aborted without deploying, release the locks."
    ),
    bearer_token: str | None = BearerTokenOption,
    basic_auth: str | None = BasicAuthOption,
    header: list[str] | None = HeaderOption,
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Stop a rollout and restore the previous images on every node (a pending forward deploy is dropped).

    Works on a running rollout (it is asked to stop and restores itself) and on an interrupted one.
    Exit 3 once aborted (1 if it was already rolling back).

    Example: xzctl rollout abort asr-7xk2p    (target gone: xzctl rollout abort asr-7xk2p --force)
    """
    store = StateStore(state_dir)
    state = store.load(rollout_id) if rollout_id else store.latest()
    if state.terminal:
        raise BadInputError(f"rollout {state.id} is already {state.phase.value}")
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
        if force:
            state = force_abort(store, state)
            stderr.print(f"[yellow]check by hand[/]: {escape(state.reason)}", soft_wrap=True)
        else:
            state = _engine(store, None, (bearer_token, basic_auth, header), state, analysis=False).abort()
    _finish(state, store, output)
