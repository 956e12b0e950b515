"""What a `rollout` command acts on: its deployer, its Prometheus client and analysis, its settings and options.

The options every command on a recorded rollout takes are one object (`Recorded`), declared once: `option_set`
adds its fields to a command's signature, so the commands list only their own flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from xzctl.cli._common import Output, OutputOption, PrometheusAuth, StateDirOption
from xzctl.cli._context import sandbox_kubeconfig
from xzctl.errors import BadInputError, UnknownStateError
from xzctl.images import check_reference, load_catalog
from xzctl.manifests.pins import ROLLABLE_SERVICES, ImagePins, spec_pins
from xzctl.prom import PrometheusClient
from xzctl.rollout.analysis import Analyzer
from xzctl.rollout.deploy import Deployer, SimulatorDeployer, StackDeployer
from xzctl.rollout.engine import RolloutEngine
from xzctl.rollout.plan import METRIC_SERVICE, canary_nodes
from xzctl.rollout.start import new_rollout, undo_source
from xzctl.rollout.state import RETRIABLE, RolloutState, Settings, StateStore
from xzctl.rollout.transitions import EventSink
from xzctl.sandbox import SandboxInfo, SimulatorClient, sandbox_status
from xzctl.spec import Fleet, load_fleet

IdArgument = typer.Argument(
    None,
    help="Rollout id (default: the latest unfinished one; retry: the latest rolled back or aborted).",
    show_default=False,
)
AcceptSpecOption = typer.Option(
    False, "--accept-spec-change", help="Carry on although the fleet spec changed since the rollout started."
)
CatalogOption = typer.Option(None, "--catalog", envvar="XZCTL_CATALOG", help="Image catalog directory.")
WriteSpecOption = typer.Option(
    None,
    "--write-spec/--no-write-spec",
    help="Once promoted, pin the image in the fleet spec (comment-preserving). Default: ask on a terminal.",
    show_default=False,
)


@dataclass(frozen=True)
class Recorded(PrometheusAuth):
    """The options of resume, promote and abort: which rollout, Prometheus credentials, state dir, output."""

    rollout_id: str | None = IdArgument
    state_dir: Path | None = StateDirOption
    output: Output = OutputOption


@dataclass(frozen=True)
class CarryOn(Recorded):
    """resume, promote and retry: they may meet a changed spec and end promoted."""

    accept_spec_change: bool = AcceptSpecOption
    write_spec: bool | None = WriteSpecOption


@dataclass(frozen=True)
class UndoOptions(PrometheusAuth):
    """undo: which release to return to, the catalog that must still list it, where and how to say the result."""

    target: str = typer.Argument(
        ...,
        metavar="SERVICE_OR_ID",
        help="A service (undo its latest promoted rollout) or a promoted rollout's id.",
    )
    catalog: Path | None = CatalogOption
    state_dir: Path | None = StateDirOption
    output: Output = OutputOption
    write_spec: bool | None = WriteSpecOption


def real_asr_node(info: SandboxInfo, service: str, nodes: list[str], max_wer: float | None = None) -> str | None:
    """The sandbox's real node when an ASR rollout reaches it and it runs the xiaozhi server (its turns are then
    measured on both tracks); None otherwise. Without the server the canary is simulated, so it has no word error
    rate: `--max-wer` is refused at once rather than failing closed measurement after measurement."""
    record = info.real_node or {}
    node = record.get("node")
    if service != "asr" or node not in nodes:
        return None
    if record.get("xiaozhi"):
        return str(node)
    if max_wer is not None:
        raise BadInputError(
            f"--max-wer: real node {node} runs no xiaozhi server, so its ASR canary would be simulated, with no "
            "word error rate to judge",
            hint="restart the sandbox with --xiaozhi-source DIR (or $XZCTL_XIAOZHI_SOURCE)",
        )
    return None


def sandbox_instance(info: SandboxInfo) -> str:
    return f"{info.started_at:.3f}/{info.pids.get('simulator', 0)}"


def build_deployer(config: dict[str, Any], store: StateStore, rollout_id: str = "") -> Deployer:
    """The deployer a rollout state names (so `resume` drives the same target as `canary` did)."""
    force = f"xzctl rollout abort {rollout_id} --force" if rollout_id else "xzctl sandbox up"
    if config.get("kind") == "sandbox":
        info = sandbox_status(store.root)
        now = sandbox_instance(info) if info is not None and all(info.alive().values()) else None
        if config.get("instance") and now != config["instance"]:
            raise UnknownStateError(
                f"the sandbox this rollout deploys to ({config['simulator_url']}) is gone"
                + (" (another sandbox runs now)" if now else ""),
                hint=f"nothing can restore its nodes: {force}",
            )
        client = SimulatorClient(str(config["simulator_url"]))
        real = None
        if config.get("real_node"):
            from xzctl.sandbox.realcanary import RealNodeAsr

            real = (str(config["real_node"]), RealNodeAsr(store.root).apply)
        return SimulatorDeployer(client.control, client.state, client.url, str(config.get("instance", "")), real)
    if config.get("kind") == "pulumi":
        return _stack_deployer(str(config["stack"]), str(config["fleet"]), config.get("state_dir"))
    raise BadInputError(f"unknown deployer {config!r} in the rollout state", hint=force)


def _stack_deployer(template: str, fleet_path: str, state_dir: str | None) -> StackDeployer:
    fleet = load_fleet(fleet_path).fleet
    regions = {name: [n.id for n in region.edge_nodes] for name, region in fleet.regions.items()}
    if "{region}" not in template and len(regions) > 1:
        raise BadInputError(
            f"--stack {template!r} names one stack but the fleet has {len(regions)} regions",
            hint="use a template like org/xzctl/{region}",
        )
    # Imported only when a production rollout runs; checked before anything is recorded or deployed.
    from xzctl.provision import check_pulumi_cli, up
    from xzctl.provision import state_dir as backend_state
    from xzctl.provision.automation import check_passphrase
    from xzctl.provision.backend import stack_cluster, stack_pins

    check_pulumi_cli()
    check_passphrase()
    stacks = [template.replace("{region}", region) for region in regions]

    def update(region: str, pins: ImagePins) -> None:
        stack = template.replace("{region}", region)
        kubeconfig = sandbox_kubeconfig(stack_cluster(fleet, stack), None, Path(state_dir) if state_dir else None)
        up(stack, fleet_path, pins=pins, state=state_dir, kubeconfig=kubeconfig)

    def current() -> ImagePins:
        return stack_pins(fleet, stacks, backend_state(state_dir))

    config = {"stack": template, "fleet": fleet_path, "state_dir": state_dir}
    return StackDeployer(update, regions, config, current)


def analyzer(state: RolloutState, prometheus: PrometheusClient, store: StateStore) -> Analyzer:
    scrape = scrape_interval(state.deployer, store)
    regions = {n.id: n.region for n in load_fleet(state.fleet).fleet.edge_nodes()}
    return Analyzer(
        prometheus,
        METRIC_SERVICE[state.service],
        state.thresholds,
        scrape_interval_seconds=scrape,
        node_regions=regions,
    )


def scrape_interval(config: dict[str, Any], store: StateStore) -> float:
    """How often Prometheus scrapes the nodes: the sandbox's setting, else the spec's metrics interval."""
    if config.get("kind") == "sandbox":
        info = sandbox_status(store.root)
        return float(info.scrape_interval_seconds) if info is not None else 1.0
    fleet = load_fleet(str(config["fleet"])).fleet
    return float(max(n.monitoring.metrics_interval_seconds for n in fleet.edge_nodes()))


def recorded_engine(
    store: StateStore,
    state: RolloutState,
    auth: PrometheusAuth,
    on_event: EventSink,
    *,
    analysis: bool = True,
) -> RolloutEngine:
    """The engine of a recorded rollout; `analysis` False (abort) needs no Prometheus credentials."""
    if analysis and state.prometheus_auth and not auth.given() and (not state.terminal or state.phase in RETRIABLE):
        raise BadInputError(
            f"rollout {state.id} was started with Prometheus credentials ({', '.join(state.prometheus_auth)}), "
            "which are never recorded",
            hint="pass them again: --bearer-token / --basic-auth / --header, or $XZCTL_PROMETHEUS_TOKEN",
        )
    deployer = build_deployer(state.deployer, store, state.id)
    return RolloutEngine(
        store,
        state,
        deployer,
        analyzer(state, auth.bind(state.prometheus_url, "recorded").client(), store),
        on_event=on_event,
    )


def settings(**values: Any) -> Settings:
    try:
        parsed = Settings(**values)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        unit = " (in seconds)" if field.endswith("_seconds") else ""
        flag = field.removesuffix("_seconds").replace("_", "-")
        raise BadInputError(f"--{flag}: {exc.errors()[0]['msg']}{unit}") from None
    return parsed.model_copy(update={"window_seconds": parsed.window})  # recorded resolved, not as "default"


def skips(values: list[str] | None) -> dict[str, str]:
    """`NODE` or `NODE=why` -> {node: why}."""
    out: dict[str, str] = {}
    for value in values or []:
        node, _, why = value.partition("=")
        out[node.strip()] = why.strip() or "--skip-node"
    return out


def catalog_warmup(fleet: Fleet, service: str, image: str, catalog: Path | None, *, production: bool) -> float:
    """Check `image` against the catalog (and the fleet's model for `service`); its warm-up in seconds."""
    model = fleet.edge_nodes()[0].services.inference().get(service)
    known = load_catalog(catalog)
    check_reference(known, image, service, production=production, model=model.model if model else None)
    from xzctl.images.catalog import ImageRef

    listed = known.by_repository(ImageRef.parse(image).repository)
    return float(listed.info.warmup_seconds if listed is not None else 0)


def undo_engine(store: StateStore, options: UndoOptions, on_event: EventSink) -> RolloutEngine:
    """A new rollout back to the release the promoted rollout `options.target` names (or its service's latest one)
    replaced: over the nodes it promoted, with its recorded settings and thresholds, the image checked against the
    catalog again (a release yanked since is refused)."""
    name = options.target.replace("-", "_")
    service = name in ROLLABLE_SERVICES or name == "edge_coordinator"
    source, image = undo_source(store, options.target if service else None, None if service else options.target)
    loaded = load_fleet(source.fleet)
    production = loaded.fleet.metadata.environment.value == "production"
    warmup = catalog_warmup(loaded.fleet, source.service, image, options.catalog, production=production)
    config = source.deployer
    if config.get("kind") == "sandbox":  # the sandbox running now, whichever one promoted
        info = sandbox_status(store.root)
        if info is None or not all(info.alive().values()):
            raise BadInputError(f"rollout {source.id} deployed to the sandbox, but none runs", hint="xzctl sandbox up")
        config = {**config, "simulator_url": info.simulator_url, "instance": sandbox_instance(info)}
    target = build_deployer(config, store)
    nodes = canary_nodes(source.steps, len(source.steps) - 1)
    state = new_rollout(
        loaded.fleet, loaded.source, source.service, image, rollout_id=store.new_id(source.service),
        baseline=target.current() or spec_pins(loaded.fleet),
        settings=source.settings.model_copy(update={"warmup_seconds": warmup}), thresholds=source.thresholds,
        deployer=target, prometheus_url=source.prometheus_url, first_region=source.steps[0].region, only_nodes=nodes,
    )  # fmt: skip
    state.prometheus_auth = source.prometheus_auth
    engine = recorded_engine(store, state, options, on_event)
    engine.event("undo", f"back to {image}, the {source.service} release before rollout {source.id}")
    return engine
