"""`xzctl config get-contexts|use-context|view`: named contexts (fleet, Prometheus, state dir), like kubectl's."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from xzctl.cli._common import Output, OutputOption, emit, stderr
from xzctl.cli._layout import Column, print_table
from xzctl.config import config_path, current_context_name, load_config, use_context

app = typer.Typer(
    help="Named contexts in $XDG_CONFIG_HOME/xzctl/config.yaml: fleet, Prometheus, state dir, kube context, "
    "deployer. Flags > environment > context > sandbox.\n\nExample: xzctl config use-context staging",
    no_args_is_help=True,
)


def _document() -> dict[str, Any]:
    config = load_config()
    current = current_context_name(config)
    return {
        "path": str(config_path()),
        "current_context": current,
        "contexts": {name: c.model_dump(exclude_none=True) for name, c in config.contexts.items()},
    }


@app.command("get-contexts")
def get_contexts(output: Output = OutputOption) -> None:
    """List the contexts; `*` marks the current one.

    Example: xzctl config get-contexts -o json
    """
    data = _document()

    columns = [Column("current"), Column("name"), Column("fleet", 1), Column("prometheus", 2), Column("state dir", 3)]

    def table(console: Console) -> None:
        keys = ("fleet", "prometheus", "state_dir")
        current = data["current_context"]
        rows = [
            ["*" if name == current else "", escape(name), *(escape(str(c.get(k, "-"))) for k in keys)]
            for name, c in data["contexts"].items()
        ]
        if rows:
            print_table(console, columns, rows, wide=output is Output.WIDE)
        else:
            console.print(f"no contexts in {escape(data['path'])}")

    emit(data, output, table)


@app.command("use-context")
def use(name: str = typer.Argument(..., help="Context to make current.")) -> None:
    """Make a context the current one (writes current_context in the config file).

    Example: xzctl config use-context staging
    """
    where = use_context(name)
    stderr.print(f"switched to context {escape(name)} ({escape(str(where))})")


@app.command()
def view(output: Output = typer.Option(Output.YAML, "--output", "-o", help="Output format.")) -> None:
    """Print the config file as xzctl reads it (secrets are never in it: auth names variables).

    Example: xzctl config view -o json
    """
    data = _document()
    emit(data, Output.JSON if output is Output.JSON else Output.YAML, lambda _console: None)
