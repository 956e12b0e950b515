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

from xzctl.cli._context import state_dir_option
from xzctl.cli._fleet import fleet_option
from xzctl.errors import BadInputError


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit 1 as for a failed check; `xzctl.cli.run` makes a closed pipe exit 0.
        raise BrokenPipeError


def _console(*, stderr: bool) -> Console:
    # Off a terminal (CI logs, pipes) rich would squeeze wide tables into 80 columns; COLUMNS still wins.
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 200
    return _Console(stderr=stderr, width=width, highlight=False, soft_wrap=False)


stdout = _console(stderr=False)
stderr = _console(stderr=True)


class Output(StrEnum):
    TABLE = "table"
    WIDE = "wide"  # the table with every column, whatever the terminal's width
    JSON = "json"
    YAML = "yaml"


FleetOption = typer.Option(
    None,
    "--fleet",
    "-f",
    envvar="XZCTL_FLEET",
    help="Fleet spec file. Default: the context's, else ./fleet.yaml, else the bundled example (read commands only).",
    show_default=False,
    callback=fleet_option,
)
StateDirOption = typer.Option(
    None,
    "--state-dir",
    envvar="XZCTL_STATE_DIR",
    help="State directory: sandbox, Pulumi file backend, rollouts. Default: the context's, else ./.xzctl",
    show_default=False,
    callback=state_dir_option,
)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, flag: str) -> float:
    """Seconds from a duration flag: PromQL's own form (500ms, 30s, 5m, 6h, 7d) or a bare number of seconds.

    The one duration type of every flag."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)|(\d+(?:\.\d+)?)", text.strip())
    if not match:
        raise BadInputError(f"{flag} {text!r} is not a duration", hint="e.g. 30 (seconds), 500ms, 30s, 5m, 6h, 7d")
    if match.group(3) is not None:
        return float(match.group(3))
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def promql_duration(text: str, flag: str) -> str:
    """The flag as a PromQL range: a bare number of seconds gets its unit (`30` -> `30s`)."""
    seconds = parse_duration(text, flag)
    return text.strip() if not re.fullmatch(r"[\d.]+", text.strip()) else f"{max(1, round(seconds))}s"


def duration(text: str) -> float:
    """Typer parser of duration options (`--interval 30s`, `--interval 30`)."""
    try:
        return parse_duration(text, "")
    except BadInputError:
        raise typer.BadParameter(f"{text!r} is not a duration: e.g. 30 (seconds), 500ms, 30s, 5m, 6h, 7d") from None


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
