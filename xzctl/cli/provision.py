"""`xzctl provision region|cloud|destroy|refresh|outputs|status`: the Pulumi stacks of edge regions and the cloud."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xzctl.cli._common import FleetOption, Output, OutputOption, StateDirOption, emit, option_set, stderr
from xzctl.cli._context import kube_context_option, sandbox_kubeconfig
from xzctl.cli._layout import Column, print_table
from xzctl.errors import BadInputError
from xzctl.provision.automation import DEFAULT_PARALLEL
from xzctl.provision.regions import DEFAULT_REGIONS_AT_ONCE

app = typer.Typer(
    help="Create and update the Kubernetes objects of edge regions and the cloud (Pulumi, local file backend).\n\n"
    "Example: xzctl provision region beijing --fleet fleet.yaml --preview",
    no_args_is_help=True,
)

PreviewOption = typer.Option(False, "--preview", help="Only show what would change; change nothing.")
YesOption = typer.Option(False, "--yes", "-y", help="Apply without asking (required when stdin is not a terminal).")
DiffOption = typer.Option(False, "--diff", help="Also print Pulumi's full property diff.")
ContextOption = typer.Option(
    None,
    "--context",
    help="Kubeconfig context; default: the xzctl context's kube_context, else the one the fleet spec names.",
    callback=kube_context_option,
)
KubeconfigOption = typer.Option(
    None,
    "--kubeconfig",
    help="Kubeconfig file; default: the spec's, else $KUBECONFIG, else the running sandbox's for context "
    "xzctl-sandbox, else ~/.kube/config.",
)
RecoverOption = typer.Option(
    False, "--recover", help="Clear what a killed update left (its lock, pending operations), then apply."
)
ParallelOption = typer.Option(
    DEFAULT_PARALLEL, "--parallel", min=1, max=256, help="Resource operations at once (readiness waits hold one each)."
)
ProvisionParallelOption = typer.Option(
    None,
    "--parallel",
    min=1,
    max=256,
    help=f"Resource operations at once (readiness waits hold one each), default {DEFAULT_PARALLEL}. With --all: "
    f"regions at once, default {DEFAULT_REGIONS_AT_ONCE} (each runs its resources {DEFAULT_PARALLEL} at once).",
)
PinsOption = typer.Option(
    None, "--pins", help="Image pins JSON file (what a rollout step deploys); default: the spec's images."
)

_OP_STYLE = {"create": "green", "update": "yellow", "delete": "red", "replace": "magenta", "same": "dim"}


def _progress(event: Any) -> None:
    if event.phase == "diagnostic":
        stderr.print(f"[{'red' if event.op == 'error' else 'yellow'}]{event.op}:[/] {escape(event.message)}")
    elif event.phase in ("done", "failed") and event.op != "same":
        mark = "[red]failed[/]" if event.phase == "failed" else "done"
        count = f"[{event.done}/{event.total}]"
        stderr.print(f"  {escape(count)} {mark} {escape(event.op)} {escape(event.type)} {escape(event.name)}")
    elif event.phase == "start" and event.op not in ("same", "refresh"):  # a refresh says what it found when done
        style = _OP_STYLE.get(event.op, "white")
        stderr.print(f"[{style}]{escape(event.op):>8}[/] {escape(event.type)} {escape(event.name)}")


def _summary(data: dict[str, Any], console: Console) -> None:
    verb = "would change" if data["preview"] else "changed"
    counts = ", ".join(f"{n} {op}" for op, n in sorted(data["changes"].items())) or "nothing"
    console.print(f"[bold]{escape(data['stack'])}[/] {verb}: {escape(counts)}")
    changed = {t: ops for t, ops in data["by_type"].items() if set(ops) - {"same"}}
    if changed:
        table = Table("resource type", "create", "update", "replace", "delete", box=None)
        for typ, ops in changed.items():
            table.add_row(typ, *(str(ops.get(op, "")) for op in ("create", "update", "replace", "delete")))
        console.print(table)
    if data.get("recovered"):
        console.print(f"recovered: cleared {len(data['recovered'])} pending operation(s) of an interrupted update")
    if data.get("diff"):
        console.print(escape(data["diff"]))
    for key, value in data.get("outputs", {}).items():
        console.print(f"  {escape(key)}: {escape(json.dumps(value, default=str))}")


@dataclasses.dataclass(frozen=True)
class ProvisionOptions:
    """The options `region` and `cloud` share (the cloud has no region and no pins)."""

    preview: bool = PreviewOption
    yes: bool = YesOption
    diff: bool = DiffOption
    context: str | None = ContextOption
    kubeconfig: Path | None = KubeconfigOption
    fleet: Path | None = FleetOption
    state_dir: Path | None = StateDirOption
    parallel: int | None = ProvisionParallelOption
    recover: bool = RecoverOption
    output: Output = OutputOption


def _consent(o: ProvisionOptions) -> None:
    if not o.preview and not o.yes and not sys.stdin.isatty():
        raise BadInputError(
            "applying changes needs --yes when stdin is not a terminal", hint="add --yes, or --preview to only look"
        )
    if o.recover and (o.preview or not o.yes):
        raise BadInputError("--recover applies at once (an interrupted state cannot be previewed): add --yes")


def _provision(o: ProvisionOptions, region: str = "cloud", pins: Path | None = None) -> None:
    _consent(o)
    from xzctl.manifests.pins import load_pins
    from xzctl.provision import up

    image_pins = load_pins(pins) if pins else None
    kubeconfig = o.kubeconfig or _sandbox_kubeconfig(o, region)

    def run(only_preview: bool) -> dict[str, Any]:
        result = up(
            region,
            o.fleet,
            image_pins,
            only_preview,
            _progress,
            diff=o.diff,
            kube_context=o.context,
            kubeconfig=kubeconfig,
            state=o.state_dir,
            parallel=o.parallel or DEFAULT_PARALLEL,
            recover=o.recover,
        )
        return result.to_dict()

    if not o.preview and not o.yes:
        planned = run(True)
        _summary(planned, stderr)
        typer.confirm("Apply these changes?", abort=True)
    data = run(o.preview)
    emit(data, o.output, lambda console: _summary(data, console))


def _sandbox_kubeconfig(o: ProvisionOptions, stack: str) -> Path | None:
    from xzctl.provision.backend import stack_cluster
    from xzctl.spec import load_fleet
    from xzctl.spec.load import resolve_fleet_path

    return sandbox_kubeconfig(
        stack_cluster(load_fleet(resolve_fleet_path(o.fleet)).fleet, stack), o.context, o.state_dir
    )


@app.command()
@option_set(ProvisionOptions, "options")
def region(
    region: str | None = typer.Argument(
        None, help="Edge region of the fleet spec, e.g. beijing (stack edge-<region>); or --all."
    ),
    *,
    every: bool = typer.Option(False, "--all", help="Every region of the fleet spec, --parallel of them at once."),
    pins: Path | None = PinsOption,
    options: ProvisionOptions,
) -> None:
    """Create or update an edge region's K3s objects (stack edge-<region>) from the fleet spec.

    Reads the cloud endpoint from the `cloud` stack, so provision the cloud first. Needs the pulumi
    CLI and PULUMI_CONFIG_PASSPHRASE; state lives in $XZCTL_STATE_DIR/pulumi (a local file backend).
    Secrets the spec names as `env:` must be exported; a `pulumi_secret: fooBar` is stored as a stack
    config secret from XZCTL_SECRET_FOO_BAR when that is set (kept from the last run otherwise).
    With --all each region is its own stack, lock and process; one table sums them up at the end, and a
    region that fails is listed there beside the others (exit code: the first failed region's).

    Example: xzctl provision region beijing --preview; xzctl provision region --all --parallel 4 --yes
    """
    if every == (region is not None):
        raise BadInputError("name one region or give --all", hint="xzctl provision region beijing, or --all")
    if every:
        if pins is not None:
            raise BadInputError("--pins names one region's images: provision that region alone")
        _provision_all(options)
    else:
        assert region is not None  # narrowed by the check above
        _provision(options, region, pins)


def _provision_all(o: ProvisionOptions) -> None:
    from xzctl.cli._regions import provision_every_region
    from xzctl.provision.regions import RegionRun
    from xzctl.spec import resolve_fleet_path

    _consent(o)
    path = resolve_fleet_path(o.fleet).absolute()
    run = RegionRun(path, o.preview, o.state_dir, o.context, o.kubeconfig, recover=o.recover)
    provision_every_region(run, at_once=o.parallel or DEFAULT_REGIONS_AT_ONCE, ask=not o.yes, output=o.output)


@app.command()
@option_set(ProvisionOptions, "options")
def cloud(*, options: ProvisionOptions) -> None:
    """Create or update the cloud cluster: LLMs, router, monitoring, logs, L3 object store, backups.

    Example: xzctl provision cloud --yes
    """
    _provision(options)


# At 80 columns the stack, its last result and who holds its lock stay; the changes fold (see _layout).
STATUS_COLUMNS = [
    Column("stack"),
    Column("resources", 2, "right"),
    Column("last update"),
    Column("finished (UTC)", 3),
    Column("locked by", 1),
    Column("changes", text=True),
]


@app.command()
def status(state_dir: Path | None = StateDirOption, output: Output = OutputOption) -> None:
    """List the stacks in the local backend with their resources, last update and lock.

    Works without the pulumi CLI (it reads the backend's files).

    Example: xzctl provision status -o json
    """
    from xzctl.provision import stack_statuses
    from xzctl.provision import state_dir as resolve_state

    where = resolve_state(state_dir)
    stacks = [s.to_dict() for s in stack_statuses(where)]

    def table(console: Console) -> None:
        if not stacks:
            console.print(
                f"no stacks in {escape(str(where / 'pulumi'))} yet; start with: xzctl provision cloud --preview"
            )
            return
        rows = []
        for s in stacks:
            changes = ", ".join(f"{n} {op}" for op, n in sorted(s["changes"].items()) if op != "same")
            result = s["result"] or "-"
            style = "green" if result == "succeeded" else "red"
            holder = (s["locked_by"] or "").split(" (pid")[0]  # the full lock is in -o json
            rows.append(
                [
                    escape(s["stack"]),
                    str(s["resources"]),
                    f"{escape(s['last_update'] or '-')} [{style}]{escape(result)}[/]",
                    (s["finished"] or "-").replace("T", " ").rstrip("Z"),
                    escape(holder),
                    escape(changes),
                ]
            )
        print_table(console, STATUS_COLUMNS, rows, wide=output is Output.WIDE)

    emit({"state": str(where / "pulumi"), "stacks": stacks}, output, table)


TargetArgument = typer.Argument(
    ..., metavar="STACK", help="The stack: `region beijing` (stack edge-beijing) or `cloud`."
)


def _stack_name(words: list[str]) -> str:
    """`region beijing` -> beijing, `cloud` -> cloud (a stack name such as edge-beijing passes as it is)."""
    if len(words) == 2 and words[0] == "region":
        return words[1]
    if len(words) == 1 and words[0] != "region":
        return words[0]
    raise BadInputError(f"{' '.join(words)!r} names no stack", hint="give `region REGION` or `cloud`")


@dataclasses.dataclass(frozen=True)
class StackRunOptions:
    """The options `destroy` and `refresh` share."""

    preview: bool = PreviewOption
    yes: bool = YesOption
    fleet: Path | None = FleetOption
    state_dir: Path | None = StateDirOption
    parallel: int = ParallelOption
    output: Output = OutputOption


RUN_COLUMNS = [Column("resource"), Column("type", 1), Column("op"), Column("fields", text=True)]


def _run_summary(data: dict[str, Any], console: Console, wide: bool) -> None:
    done = {"destroy": ("would remove", "removed"), "refresh": ("would read back", "read back")}[data["action"]]
    counts = ", ".join(f"{n} {op}" for op, n in sorted(data["changes"].items())) or "nothing"
    console.print(f"[bold]{escape(data['stack'])}[/] {done[0 if data['preview'] else 1]}: {escape(counts)}")
    if data["action"] == "refresh":
        drifted = len(data["resources"])
        console.print(f"drift: {drifted} resource(s) changed or deleted outside Pulumi" if drifted else "no drift")
    rows = [
        [escape(r["name"]), escape(r["type"]), escape(r["op"]), escape(", ".join(r["fields"]))]
        for r in data["resources"]
    ]
    if rows:
        print_table(console, RUN_COLUMNS, rows, wide=wide)


def _stack_run(action: str, words: list[str], o: StackRunOptions, **extra: Any) -> None:
    from xzctl.provision import lifecycle

    name = _stack_name(words)
    if not o.preview and not o.yes and not sys.stdin.isatty():
        raise BadInputError(
            f"{action} needs --yes when stdin is not a terminal", hint="add --yes, or --preview to only look"
        )
    run = getattr(lifecycle, action)
    wide = o.output is Output.WIDE

    def call(only_preview: bool) -> dict[str, Any]:
        kwargs = {"preview": only_preview, "on_event": _progress, "state": o.state_dir, "parallel": o.parallel}
        result = run(name, o.fleet, **kwargs, **extra)
        data: dict[str, Any] = result.to_dict()
        return data

    if not o.preview and not o.yes:
        planned = call(True)
        _run_summary(planned, stderr, wide)
        typer.confirm(f"{action.capitalize()} stack {planned['stack']}?", abort=True)
    data = call(o.preview)
    emit(data, o.output, lambda console: _run_summary(data, console, wide))


def _rollout_holds(state_dir: Path | None) -> dict[str, str]:
    """Edge node -> the unfinished rollout that may change it (`destroy` refuses to pull a region from under it)."""
    from xzctl.rollout.state import StateStore

    return {node: s.id for s in StateStore(state_dir).all() if not s.terminal for node in s.nodes}


@app.command()
@option_set(StackRunOptions, "options")
def destroy(target: list[str] = TargetArgument, *, options: StackRunOptions) -> None:
    """Delete every resource of a stack from its cluster, as `pulumi destroy` (asks first unless --yes).

    Refused while an unfinished rollout holds the region's nodes, and for the cloud while an edge stack still
    reads its endpoint. The stack and its config stay (empty): `provision region|cloud` creates it all again.

    Example: xzctl provision destroy region beijing --preview
    """
    _stack_run("destroy", target, options, held_by=_rollout_holds(options.state_dir))


@app.command()
@option_set(StackRunOptions, "options")
def refresh(target: list[str] = TargetArgument, *, options: StackRunOptions) -> None:
    """Read a stack's resources back from the cluster into its state and report drift, as `pulumi refresh`.

    Drift is a resource changed (fields listed) or deleted outside Pulumi; --preview reports it and keeps the
    state as it is; the next `provision region|cloud` puts the cluster back to the spec.

    Example: xzctl provision refresh region beijing --preview
    """
    _stack_run("refresh", target, options)


@app.command()
def outputs(
    target: list[str] = TargetArgument,
    fleet: Path | None = FleetOption,
    state_dir: Path | None = StateDirOption,
    output: Output = OutputOption,
) -> None:
    """Print a stack's outputs (its endpoint, namespace, replicas), as `pulumi stack output`.

    Read from the local backend: works without the pulumi CLI. Secret outputs show as [secret].

    Example: xzctl provision outputs cloud -o json
    """
    from xzctl.provision import lifecycle

    data = lifecycle.outputs(_stack_name(target), fleet, state=state_dir)

    def table(console: Console) -> None:
        rows = [[escape(k), escape(json.dumps(v, default=str))] for k, v in data["outputs"].items()]
        print_table(console, [Column("output"), Column("value", text=True)], rows, wide=output is Output.WIDE)

    emit(data, output, table)
