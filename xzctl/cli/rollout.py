"""`xzctl rollout canary|status|pause|resume|promote|abort|retry|undo`: node-by-node canaries on live metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from xzctl.cli import _rollout_setup as setup
from xzctl.cli import _rollout_view as view
from xzctl.cli._common import (
    FleetOption,
    Output,
    OutputOption,
    PrometheusOptions,
    StateDirOption,
    option_set,
    parse_duration,
    stderr,
)
from xzctl.cli._rollout_setup import CarryOn, CatalogOption, Recorded, UndoOptions, WriteSpecOption
from xzctl.errors import BadInputError, ConflictError
from xzctl.manifests.pins import spec_pins
from xzctl.rollout.analysis import thresholds_from_fleet, turn_kpis
from xzctl.rollout.deploy import choose_deployer
from xzctl.rollout.engine import RolloutEngine, check_retriable
from xzctl.rollout.plan import METRIC_SERVICE, normalise_service, plan_steps
from xzctl.rollout.start import new_rollout
from xzctl.rollout.state import RETRIABLE, Phase, RolloutState, StateStore
from xzctl.rollout.transitions import force_abort
from xzctl.sandbox import sandbox_status
from xzctl.spec import load_fleet

HELP = """Node-by-node canary rollouts of catalog images, judged on live metrics.

Phases: progressing -> promoted | partial | rolled_back | aborted; paused (inconclusive analysis, a held node or one another rollout holds: promote, resume or abort); rolling_back / aborting while the previous images go back.

Exit codes: 0 promoted on every planned node; 1 rolled back (the canary was worse, or a deploy failed); 3 aborted (operator, or missing data), paused, or partial (some nodes left on the previous image, named with the command that converges them); 5 an edge node is locked by another rollout.

Fail closed: a step passes only on --checks successful measurements, each over samples taken after its deploy and the image's warm-up; no data, NaN or an unscraped node counts as an error, and more errors in a row than the limit abort the rollout. Nodes are left out only with --skip-node.

Locks: a rollout holds only the edge nodes its current deploy changes: a step's nodes from its deploy until its analysis passes (under Pulumi its whole region), the nodes carrying its canary while it promotes or restores. A first step on a node another rollout holds is refused (exit 5); a later step waits while that rollout runs (up to 30 min), else pauses with the command that frees the node. A killed rollout keeps at most the nodes it was on until it is resumed or aborted.

retry runs a rolled-back or aborted rollout again from the step it stopped at; undo returns a service to the release before its latest promoted rollout, as a canary of that image.

--force (abort): when the deploy target is gone (a replaced sandbox, a deleted cluster), mark the rollout aborted without deploying and release its locks; then check the nodes by hand.

Example: xzctl rollout canary asr registry.xiaozhi.example/inference/asr:1.4.0 --region beijing --deployer sandbox
"""

app = typer.Typer(help=HELP, no_args_is_help=True)

ABORT_WAIT_SECONDS = 120.0  # how long `abort` waits for a running rollout to restore the previous images
WATCH_MAX_SECONDS = 24 * 3600.0


@app.command()
@option_set(PrometheusOptions, "prom")
def canary(
    service: str = typer.Argument(..., help="Service: vad, asr, tts, llm, xiaozhi-server, coordinator."),
    image: str = typer.Argument(..., help="Catalog image reference, e.g. registry.xiaozhi.example/inference/asr:1.4.0"),
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
    failure_limit: int = typer.Option(
        0, "--failure-limit", help="Failed measurements a step tolerates before rolling back (Argo failureLimit)."
    ),
    inconclusive_limit: int = typer.Option(
        0, "--inconclusive-limit", help="Inconclusive measurements a step tolerates before pausing."
    ),
    max_wer: float | None = typer.Option(
        None,
        "--max-wer",
        min=0,
        help="ASR: also judge the word error rate a prober measures (e.g. 0.3); nodes without a prober then fail closed.",
    ),
    turns: bool | None = typer.Option(
        None,
        "--turns/--no-turns",
        help="Also judge real turns through the xiaozhi server (probe devices): first-audio p95 against the spec's "
        "end-to-end KPI and turn failures against its error rate. Default: on when an ASR rollout reaches the "
        "sandbox's real node.",
        show_default=False,
    ),
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
    catalog: Path | None = CatalogOption,
    prom: PrometheusOptions,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would happen and stop: nothing is deployed or recorded."
    ),
    write_spec: bool | None = WriteSpecOption,
    output: Output = OutputOption,
) -> None:
    """Roll IMAGE out for SERVICE: one edge node, then the rest of its region, then the other regions, each step
    judged on live metrics (error rate, p95 latency, inference errors: canary vs KPI and vs stable). A failed
    analysis rolls every node back automatically.

    Example: xzctl rollout canary asr registry.xiaozhi.example/inference/asr:1.4.0 --region beijing --interval 60s --checks 5
    """
    store = StateStore(prom.state_dir)
    sandbox = sandbox_status(store.root)
    sandbox_up = sandbox is not None and all(sandbox.alive().values())
    if fleet is None and deployer != "pulumi" and sandbox_up and sandbox is not None:
        fleet = Path(sandbox.fleet_path)
    loaded = load_fleet(fleet)
    environment = loaded.fleet.metadata.environment.value
    kind = choose_deployer(deployer, environment, sandbox_up)
    name = normalise_service(service)
    image_warmup = setup.catalog_warmup(loaded.fleet, name, image, catalog, production=environment == "production")
    settings = setup.settings(
        interval_seconds=parse_duration(interval, "--interval"),
        checks=checks,
        on_unreachable=on_unreachable,
        error_limit=error_limit,
        failure_limit=failure_limit,
        inconclusive_limit=inconclusive_limit,
        window_seconds=parse_duration(window, "--window") if window else 0.0,
        warmup_seconds=parse_duration(warmup, "--warmup") if warmup else image_warmup,
    )
    skips = setup.skips(skip_node)
    steps = plan_steps(loaded.fleet, name, region, only=node, skip=list(skips))
    thresholds = thresholds_from_fleet(loaded.fleet, METRIC_SERVICE[name])
    if max_wer is not None:
        thresholds.extra["word_error_rate"] = max_wer
    nodes = [n for s in steps for n in s.nodes]
    real_node = setup.real_asr_node(sandbox, name, nodes, max_wer) if kind == "sandbox" and sandbox else None
    if turns or (turns is None and real_node is not None):
        thresholds.extra |= turn_kpis(loaded.fleet)
    try:
        prometheus = prom.target()  # flags > environment > context > sandbox, as for every live command
    except BadInputError:
        if not dry_run:
            raise
        prometheus = None  # a dry run needs no Prometheus: it says there is none
    plan: dict[str, Any] = {
        "service": name,
        "image": image,
        "deployer": kind,
        "prometheus": prometheus.url if prometheus else "(none: pass --prometheus)",
        "fleet": loaded.source,
        "settings": settings.model_dump(),
        "thresholds": thresholds.model_dump(),
        "node_order": nodes,
        "skipped_nodes": skips,
        "steps": [{"name": s.name, "region": s.region, "nodes": s.nodes} for s in steps],
    }
    regions = list(dict.fromkeys(s.region for s in steps))
    stacks = ", ".join(dict.fromkeys(stack.replace("{region}", r) for r in regions))  # the names, filled in
    sandbox_target = "the sandbox simulator" + (
        f" and real node {real_node}'s ASR replicas, each with its xiaozhi server and probe" if real_node else ""
    )
    view.say_plan(plan, sandbox_target if kind == "sandbox" else f"Pulumi stacks {stacks}")
    if dry_run or prometheus is None:
        view.dry_run(plan, steps, skips, output)
        return
    if kind == "sandbox":
        assert sandbox is not None
        config = {
            "kind": "sandbox",
            "simulator_url": sandbox.simulator_url,
            "instance": setup.sandbox_instance(sandbox),
        } | ({"real_node": real_node} if real_node else {})
    else:
        config = {"kind": "pulumi", "stack": stack, "fleet": loaded.source, "state_dir": str(store.root)}
    target = setup.build_deployer(config, store)
    baseline = target.current() or spec_pins(loaded.fleet)
    used = prom.given()  # recorded by kind, never by value: resume asks for them again
    if (prometheus.basic_auth or prometheus.bearer_token) and not used:
        used.append(
            "the context's credentials" if prometheus.source.startswith("context") else "credentials in the URL"
        )
    state = new_rollout(
        loaded.fleet, loaded.source, name, image, rollout_id=store.new_id(name), baseline=baseline, settings=settings,
        thresholds=thresholds, deployer=target, prometheus_url=prometheus.url, first_region=region,
        only_nodes=node, skip_nodes=skips,
    )  # fmt: skip
    state.prometheus_auth = used
    engine = RolloutEngine(store, state, target, setup.analyzer(state, prometheus.client(), store), on_event=view.live)
    _drive(engine, output, write_spec)


def _drive(engine: RolloutEngine, output: Output, write_spec: bool | None) -> None:
    """Start a new rollout and show how it ended."""
    try:
        final = engine.start()
    except KeyboardInterrupt:
        rollout_id = engine.state.id
        stderr.print(
            f"rollout {rollout_id} interrupted; its canary stays as recorded: "
            f"xzctl rollout resume {rollout_id}  or  xzctl rollout abort {rollout_id}"
        )
        raise
    view.finish(final, engine.store, output, write_spec)


def _engine(store: StateStore, options: Recorded, state: RolloutState | None = None, *, analysis: bool = True
            ) -> RolloutEngine:  # fmt: skip
    """The engine of the rollout `options` name (or of `state`, already loaded)."""
    state = state or (store.load(options.rollout_id) if options.rollout_id else store.latest())
    return setup.recorded_engine(store, state, options, view.live, analysis=analysis)


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
        rows = view.status_rows(store, rollout_id)
        view.show(rows, rollout_id, store, output, watch=watch)
        settled = all(r["phase"] in view.SETTLED for r in rows)  # nothing changes without the operator
        if not watch or settled or time.monotonic() > deadline:
            return
        time.sleep(period)


@app.command()
@option_set(Recorded, "options")
def pause(*, options: Recorded) -> None:
    """Pause a progressing rollout where it stands (its nodes keep their images and locks) until `rollout resume`.

    A running rollout is asked and pauses between deploys; an interrupted one is marked paused. Exit 3 once paused.

    Example: xzctl rollout pause asr-7xk2p    (then: xzctl rollout resume asr-7xk2p, or abort)
    """
    store = StateStore(options.state_dir)
    state = store.load(options.rollout_id) if options.rollout_id else store.latest()
    if state.phase != Phase.PROGRESSING:
        raise BadInputError(f"rollout {state.id} is {state.phase.value}, not progressing: nothing to pause")
    driver = store.driver(state)
    if driver is None:
        engine = _engine(store, options, state, analysis=False)
        store.take_over(engine.state)
        state = engine.pause()
    else:
        store.request_pause(state.id)
        stderr.print(f"asked pid {driver.pid} to pause {state.id}")
        deadline = time.monotonic() + ABORT_WAIT_SECONDS
        while state.phase == Phase.PROGRESSING and store.driver(state) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
            state = store.load(state.id)
        if state.phase == Phase.PROGRESSING:
            raise ConflictError(
                f"rollout {state.id} did not pause within {ABORT_WAIT_SECONDS:g}s (a deploy still running?)",
                hint=f"xzctl rollout status {state.id}; the pause stays asked",
            )
    view.finish(state, store, options.output)


@app.command()
@option_set(CarryOn, "options")
def resume(*, options: CarryOn) -> None:
    """Carry on an interrupted (killed) or held rollout from its recorded step.

    A half-done deploy is re-applied only when the phase allows it: a rollout going back only ever restores.

    Example: xzctl rollout resume asr-7xk2p
    """
    store = StateStore(options.state_dir)
    final = _engine(store, options).resume(accept_spec_change=options.accept_spec_change)
    view.finish(final, store, options.output, options.write_spec)


@app.command()
@option_set(CarryOn, "options")
def promote(
    *,
    options: CarryOn,
    full: bool = typer.Option(False, "--full", help="Skip the remaining steps: promote on every planned node now."),
) -> None:
    """Accept the step an inconclusive analysis paused on and carry on with the next steps.

    Once promoted, offers to pin the image in the fleet spec so the next provision keeps it.

    Example: xzctl rollout promote asr-7xk2p --full --write-spec
    """
    store = StateStore(options.state_dir)
    final = _engine(store, options).promote(full=full, accept_spec_change=options.accept_spec_change)
    view.finish(final, store, options.output, options.write_spec)


@app.command()
@option_set(CarryOn, "options")
def retry(*, options: CarryOn) -> None:
    """Run a rolled-back or aborted rollout again from the step it stopped at (as `kubectl argo rollouts retry`).

    The steps that had passed keep their verdicts; their nodes take the canary again with that step's deploy.

    Example: xzctl rollout retry asr-7xk2p
    """
    store = StateStore(options.state_dir)
    state = store.load(options.rollout_id) if options.rollout_id else store.latest(RETRIABLE)
    check_retriable(state)  # before its deployer is built: a promoted rollout's answer is undo, not its target
    final = _engine(store, options, state).retry(accept_spec_change=options.accept_spec_change)
    view.finish(final, store, options.output, options.write_spec)


@app.command()
@option_set(UndoOptions, "options")
def undo(*, options: UndoOptions) -> None:
    """Return a service to the release before its latest promoted rollout, by a canary rollout of that image.

    Over the nodes that rollout promoted, with its recorded settings and thresholds (as `kubectl argo rollouts
    undo`, the steps run again). Exit codes as for canary.

    Example: xzctl rollout undo asr    (or a promoted rollout's id: xzctl rollout undo asr-7xk2p)
    """
    store = StateStore(options.state_dir)
    _drive(setup.undo_engine(store, options, view.live), options.output, options.write_spec)


@app.command()
@option_set(Recorded, "options")
def abort(
    *,
    options: Recorded,
    force: bool = typer.Option(
        False, "--force", help="The deploy target is gone: mark aborted without deploying, release the locks."
    ),
) -> None:
    """Stop a rollout and restore the previous images on every node (a pending forward deploy is dropped).

    Works on a running rollout (it is asked to stop and restores itself) and on an interrupted one.
    Exit 3 once aborted (1 if it was already rolling back).

    Example: xzctl rollout abort asr-7xk2p    (target gone: xzctl rollout abort asr-7xk2p --force)
    """
    store = StateStore(options.state_dir)
    state = store.load(options.rollout_id) if options.rollout_id else store.latest()
    if state.terminal:
        raise BadInputError(f"rollout {state.id} is already {state.phase.value}")
    state = _stop_driver(store, state)
    if not state.terminal:
        if force:
            state = force_abort(store, state)
            stderr.print(f"[yellow]check by hand[/]: {escape(state.reason)}", soft_wrap=True)
        else:
            state = _engine(store, options, state, analysis=False).abort()
    view.finish(state, store, options.output)


def _stop_driver(store: StateStore, state: RolloutState) -> RolloutState:
    """Ask the process driving `state` (if any) to abort, and wait for it to restore the previous images."""
    driver = store.driver(state)
    if driver is None:
        return state
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
    return state
