"""`xzctl runbook ALERT`: show an alert's runbook in the terminal."""

from __future__ import annotations

import typer
from rich.markdown import Markdown

from xzctl.alerts.runbooks import read_runbook, runbook_names, sections
from xzctl.cli._common import Output, OutputOption, emit, stdout
from xzctl.errors import BadInputError


def command(
    alert: str | None = typer.Argument(None, help="Alert name, e.g. EdgeNodeDown (case-insensitive)."),
    list_: bool = typer.Option(False, "--list", "-l", help="List the alerts that have a runbook."),
    raw: bool = typer.Option(False, "--raw", help="Print the Markdown source instead of rendering it."),
    output: Output = OutputOption,
) -> None:
    """Show the runbook of an alert: meaning, impact, diagnosis and mitigation steps.

    Example: xzctl runbook EdgeNodeDown
    Example: xzctl runbook EdgeNodeDown -o json | jq -r .sections.Mitigation
    """
    if list_:
        names = runbook_names()
        emit(names, output, lambda console: console.print("\n".join(names), markup=False))
        return
    if alert is None:
        raise BadInputError("give an alert name, or --list", hint="xzctl runbook --list")
    text = read_runbook(alert)
    data = {"alert": alert, "sections": sections(text), "markdown": text}
    if raw:
        stdout.print(text, markup=False, highlight=False, end="")
    else:
        emit(data, output, lambda console: console.print(Markdown(text)))
