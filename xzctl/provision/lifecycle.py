"""The rest of a stack's life, as a pulumi user knows it: `destroy` (pulumi destroy), `refresh` (pulumi refresh:
read the cluster back into the stack's state and say what drifted) and `outputs` (pulumi stack output).

As for `up`, everything that can be checked before the engine starts is checked first: the stack exists, no
update holds or half-did it, no unfinished rollout holds the region's nodes, no edge stack still reads the cloud.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xzctl.errors import ConflictError, NotFoundError
from xzctl.provision.automation import DEFAULT_PARALLEL, Progress, ProvisionEvent, check_passphrase, check_pulumi_cli
from xzctl.provision.backend import EDGE_PREFIX, ensure_unlocked, stack_for, stack_outputs, stack_statuses
from xzctl.provision.engine import engine_run, first_command, open_stack, pulumi_errors
from xzctl.provision.objects import CLOUD
from xzctl.spec import load_fleet
from xzctl.spec.models import Fleet
from xzctl.state import state_dir

OnEvent = Callable[[ProvisionEvent], None] | None


@dataclass
class StackRun:
    """What a destroy or a refresh did (or, with `preview`, would do)."""

    stack: str
    target: str
    action: str  # destroy | refresh
    preview: bool
    changes: dict[str, int] = field(default_factory=dict)  # op -> count, as Pulumi's summary says
    resources: list[dict[str, Any]] = field(default_factory=list)  # each removed or drifted: op, type, name, fields

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "target": self.target,
            "action": self.action,
            "preview": self.preview,
            "changes": self.changes,
            "resources": self.resources,
        }


def _stack(fleet_path: str | Path | None, name: str, state: str | Path | None) -> tuple[Fleet, str, str, Path]:
    fleet = load_fleet(fleet_path).fleet
    target, stack_name = stack_for(fleet, name)
    where = state_dir(state)
    if stack_outputs(where, stack_name) is None:
        raise NotFoundError(
            f"no stack {stack_name} in {where / 'pulumi'} yet", hint=f"create it: {first_command(stack_name)}"
        )
    return fleet, target, stack_name, where


def held_nodes(fleet: Fleet, target: str, held_by: Mapping[str, str]) -> dict[str, str]:
    """The region's edge nodes an unfinished rollout holds (node -> rollout); the cloud holds none."""
    if target == CLOUD:
        return {}
    return {n.id: held_by[n.id] for n in fleet.regions[target].edge_nodes if n.id in held_by}


def check_destroy(fleet: Fleet, target: str, held_by: Mapping[str, str], state: Path) -> None:
    """Refuse a destroy that would pull the ground from under something: a rollout on the region's nodes, or
    edge stacks that still read the cloud stack's endpoint (ConflictError, exit 5)."""
    held = held_nodes(fleet, target, held_by)
    if held:
        rollouts = sorted(set(held.values()))
        raise ConflictError(
            f"region {target}: rollout {', '.join(rollouts)} holds edge node(s) {', '.join(sorted(held))}",
            hint=f"finish it first: xzctl rollout status {rollouts[0]}, then resume or abort it",
        )
    if target == CLOUD:
        edges = [s.stack for s in stack_statuses(state) if s.stack.startswith(EDGE_PREFIX) and s.resources]
        if edges:
            first = edges[0].removeprefix(EDGE_PREFIX)
            raise ConflictError(
                f"edge stack(s) {', '.join(edges)} still read the cloud stack's endpoint",
                hint=f"destroy them first: xzctl provision destroy region {first}",
            )


def destroy(
    stack: str,
    fleet_path: str | Path | None = None,
    *,
    held_by: Mapping[str, str] | None = None,
    preview: bool = False,
    on_event: OnEvent = None,
    state: str | Path | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> StackRun:
    """Delete every resource of `stack` from its cluster (`preview`: only say what would go). `held_by`: edge
    node -> the unfinished rollout that holds it (the rollout layer knows; the caller asks it)."""
    fleet, target, stack_name, where = _stack(fleet_path, stack, state)
    check_destroy(fleet, target, held_by or {}, where)
    return _engine(StackRun(stack_name, target, "destroy", preview), on_event, where, parallel)


def refresh(
    stack: str,
    fleet_path: str | Path | None = None,
    *,
    preview: bool = False,
    on_event: OnEvent = None,
    state: str | Path | None = None,
    parallel: int = DEFAULT_PARALLEL,
) -> StackRun:
    """Read every resource of `stack` back from its cluster into the stack's state; report what drifted (changed
    or deleted outside Pulumi). `preview`: report only, the state stays as it is."""
    _, target, stack_name, where = _stack(fleet_path, stack, state)
    return _engine(StackRun(stack_name, target, "refresh", preview), on_event, where, parallel)


def outputs(stack: str, fleet_path: str | Path | None = None, *, state: str | Path | None = None) -> dict[str, Any]:
    """The stack's outputs as its last update left them (read from the backend: no engine, no pulumi CLI)."""
    _, target, stack_name, where = _stack(fleet_path, stack, state)
    return {"stack": stack_name, "target": target, "outputs": stack_outputs(where, stack_name) or {}}


def _engine(run: StackRun, on_event: OnEvent, where: Path, parallel: int) -> StackRun:
    check_pulumi_cli()
    check_passphrase()
    total = next((s.resources for s in stack_statuses(where) if s.stack == run.stack), 0)
    progress = Progress(total, on_event)
    with engine_run() as env:
        ensure_unlocked(where, run.stack)
        with pulumi_errors(run.stack, hint=f"see: xzctl provision status; then xzctl provision {run.action} again"):
            st = open_stack(run.stack, where, env)
            common: dict[str, Any] = {"on_event": progress, "color": "never", "parallel": parallel}
            if run.action == "destroy" and run.preview:
                run.changes = _ops(st.preview_destroy(**common).change_summary)
            elif run.action == "destroy":
                run.changes = _ops(st.destroy(**common).summary.resource_changes)
            elif run.preview:
                run.changes = _ops(st.preview_refresh(**common).change_summary)
            else:
                run.changes = _ops(st.refresh(**common).summary.resource_changes)
    # The stack itself and its providers are not the cluster's resources (nor in Pulumi's summary).
    run.resources = [_changed(e) for e in progress.changed if not e.type.startswith("pulumi:")]
    return run


def _ops(summary: Mapping[Any, int] | None) -> dict[str, int]:
    return {str(getattr(op, "value", op)): int(n) for op, n in (summary or {}).items()}


def _changed(event: ProvisionEvent) -> dict[str, Any]:
    return {"op": event.op, "type": event.type, "name": event.name, "fields": list(event.fields)}
