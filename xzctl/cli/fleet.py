"""`xzctl fleet validate|example`: the fleet spec itself."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.cli._common import FleetOption, Output, OutputOption, emit, print_warnings
from xzctl.errors import FleetSpecError
from xzctl.spec import bundled_example_path, load_fleet

app = typer.Typer(help="Validate and inspect the fleet spec.", no_args_is_help=True)


@app.command()
def validate(
    fleet: Path | None = FleetOption,
    strict: bool = typer.Option(False, "--strict", help="Refuse warnings too (contradictions in the spec)."),
    output: Output = OutputOption,
) -> None:
    """Check the fleet spec and list every problem at once.

    Example: xzctl fleet validate --fleet fleet.yaml --strict
    """
    try:
        loaded = load_fleet(fleet)
    except FleetSpecError as exc:
        if output is not Output.TABLE:
            emit({"valid": False, "problems": [vars(p) for p in exc.problems]}, output, lambda c: None)
        else:
            for p in exc.problems:
                print(f"{p.severity}: {p.render()}", file=sys.stderr)
        raise
    warnings = loaded.warnings
    data = {
        "valid": not (strict and warnings),
        "source": loaded.source,
        "regions": len(loaded.fleet.regions),
        "edge_nodes": len(loaded.fleet.edge_nodes()),
        "devices": loaded.fleet.devices,
        "problems": [vars(w) for w in warnings],
    }

    def table(console: Console) -> None:
        print_warnings(warnings)
        verdict = "[red]invalid[/]" if strict and warnings else "[green]valid[/]"
        console.print(
            f"{escape(loaded.source)}: {verdict}: {data['regions']} regions, {data['edge_nodes']} edge nodes, "
            f"{data['devices']} devices, {len(warnings)} warning(s)"
        )

    emit(data, output, table)
    if strict and warnings:
        raise FleetSpecError(warnings)


@app.command()
def example() -> None:
    """Print the bundled example fleet (1000 devices, 7 edge nodes, 3 regions) to start from.

    Example: xzctl fleet example > fleet.yaml
    """
    sys.stdout.write(bundled_example_path().read_text(encoding="utf-8"))
