"""Which fleet spec a command uses, said out loud: never the bundled example by accident.

One rule for every command: --fleet (or --example) > $XZCTL_FLEET > the current context's fleet > the
running sandbox's fleet (live commands reading its Prometheus) > ./fleet.yaml > the bundled example. Commands
that touch the world refuse that last fallback; read commands use it and say so on stderr.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from xzctl.errors import BadInputError

if TYPE_CHECKING:
    from xzctl.spec import LoadedFleet

# Command paths (after "xzctl") that deploy, SSH or start processes from the spec.
WORLD_COMMANDS = ("provision", "bootstrap region", "rollout", "sandbox")


def touches_world(command_path: str) -> bool:
    path = command_path.split(" ", 1)[1] if " " in command_path else ""
    return any(path == c or path.startswith(c + " ") for c in WORLD_COMMANDS)


def fleet_option(ctx: typer.Context, value: Path | None) -> Path | None:
    """Callback of --fleet: the explicit choice, or None when only implicit fallbacks are left."""
    from xzctl.cli._context import active
    from xzctl.spec import bundled_example_path

    example = bool(ctx.find_root().params.get("_example"))  # the global --example flag (read here only)
    if value is not None:
        if example:
            raise BadInputError("--example and --fleet name two fleets", hint="pass one of them")
        return value
    if example:
        return bundled_example_path()
    context = active()
    if context is not None and context[1].fleet:
        return context[1].fleet_path()
    generated = bool(ctx.params.get("scale"))  # sandbox up --scale N simulates a generated fleet
    if touches_world(ctx.command_path) and not generated and not Path("fleet.yaml").exists():
        running = _sandbox_fleet(ctx, context[1].state_path() if context else None)
        # The running sandbox's fleet was chosen at `sandbox up`: a rollout there touches only the sandbox, and
        # another world command may take it unless it is the bundled example.
        if running is not None and (ctx.command_path.split()[1:2] == ["rollout"] or running != bundled_example_path()):
            return running
        raise BadInputError(
            f"no fleet given: `{ctx.command_path}` will not run on the bundled example fleet",
            hint="pass --fleet FILE, set $XZCTL_FLEET or a context's fleet, or --example to mean the example",
        )
    return None


def _sandbox_fleet(ctx: typer.Context, context_state: Path | None) -> Path | None:
    """The fleet of the sandbox running in this command's state dir, or None (none running, or `sandbox ...`)."""
    from xzctl.sandbox import default_state_dir, sandbox_status

    if ctx.command_path.split()[1:2] == ["sandbox"]:
        return None  # `sandbox up` picks a fleet of its own
    where = ctx.params.get("state_dir") or context_state or default_state_dir()
    running = sandbox_status(Path(where))
    return Path(running.fleet_path) if running is not None and all(running.alive().values()) else None


def load(path: Path | None, *, sandbox_fleet: str | None = None, schema_only: bool = False) -> LoadedFleet:
    """Load the fleet the rule picks; say on stderr when that is the bundled example.

    `schema_only`: skip the cross-field rules, for a command that judges some of them itself (`images verify`
    reports unpinned production images as its findings instead of stopping at them)."""
    from xzctl.spec import LoadedFleet, bundled_example_path, load_fleet
    from xzctl.spec.load import build_fleet, read_spec_document, resolve_fleet_path

    if path is None and sandbox_fleet:
        path = Path(sandbox_fleet)
    resolved = resolve_fleet_path(path)
    if path is None and resolved == bundled_example_path():
        print(
            f"xzctl: fleet: the bundled example ({resolved}); pass --fleet FILE to use yours",
            file=sys.stderr,
        )
    # A spec builds hundreds of thousands of acyclic objects and lives as long as the command: the cyclic collector
    # would rescan them at every pass (40 % of a 10,000-node validate), so it is paused while they are built and they
    # are set aside (gc.freeze) before it resumes. Reference counting still frees whatever is dropped.
    gc.disable()
    try:
        if schema_only:
            raw, lines = read_spec_document(resolved)
            return LoadedFleet(build_fleet(raw, lines, str(resolved)), str(resolved))
        return load_fleet(resolved)
    finally:
        gc.freeze()
        gc.enable()
