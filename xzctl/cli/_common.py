"""Options and output rendering shared by every command."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape


def _console(*, stderr: bool) -> Console:
    # Off a terminal (CI logs, pipes) rich would squeeze wide tables into 80 columns; COLUMNS still wins.
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=stderr, width=width, highlight=False, soft_wrap=False)


stdout = _console(stderr=False)
stderr = _console(stderr=True)


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


FleetOption = typer.Option(
    None,
    "--fleet",
    "-f",
    envvar="XZCTL_FLEET",
    help="Fleet spec file. Default: ./fleet.yaml, else the bundled example.",
    show_default=False,
)
OutputOption = typer.Option(Output.TABLE, "--output", "-o", help="Output format.", case_sensitive=False)


def emit(data: Any, output: Output, table: Callable[[Console], None]) -> None:
    """Print `data` as JSON/YAML for machines, or call `table` to draw it for people."""
    if output is Output.JSON:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    elif output is Output.YAML:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        table(stdout)


def print_warnings(warnings: list[Any]) -> None:
    for w in warnings:
        stderr.print(f"[yellow]warning:[/] {escape(w.render())}")
