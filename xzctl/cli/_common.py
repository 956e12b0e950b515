"""Options and output rendering shared by every command."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from xzctl.errors import BadInputError


def _console(*, stderr: bool) -> Console:
    # Off a terminal (CI logs, pipes) rich would squeeze wide tables into 80 columns; COLUMNS still wins.
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    # No emoji codes: names are data, and Pulumi types such as xzctl:cloud:X would print a cloud emoji.
    return Console(stderr=stderr, width=width, highlight=False, soft_wrap=False, emoji=False)


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
StateDirOption = typer.Option(
    None,
    "--state-dir",
    envvar="XZCTL_STATE_DIR",
    help="State directory: sandbox, Pulumi file backend, rollouts. Default: ./.xzctl",
    show_default=False,
)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, flag: str) -> float:
    """Seconds from a duration flag in PromQL's own form (500ms, 30s, 5m, 6h, 7d), so it also fits a rate window."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text.strip())
    if not match:
        raise BadInputError(f"{flag} {text!r} is not a duration", hint="e.g. 500ms, 30s, 5m, 6h, 7d")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


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
