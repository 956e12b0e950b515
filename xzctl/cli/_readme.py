"""The README's command map and exit-code table, generated from the registered commands and `EXIT_CODES`.

`python scripts/readme.py` rewrites the blocks between the markers; tests/cli/test_readme.py fails when the
README drifts from the code.
"""

from __future__ import annotations

import re
from typing import Any

import typer

from xzctl.errors import EXIT_CODES

BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def _usage(command: Any, ctx: Any) -> str:
    pieces = [p for p in command.collect_usage_pieces(ctx) if p != "[OPTIONS]"]
    return re.sub(
        r"[{\[]?(\w+)[}\]]?", lambda m: m.group(0).upper().replace("{", "").replace("}", ""), " ".join(pieces)
    )


def _rows(command: Any, ctx: Any, path: str) -> list[tuple[str, str]]:
    if hasattr(command, "list_commands"):
        rows = []
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                rows += _rows(sub, typer.Context(sub, info_name=name, parent=ctx), f"{path} {name}")
        return rows
    usage = _usage(command, ctx)
    return [(f"{path} {usage}".strip(), command.get_short_help_str(limit=150))]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def command_map() -> str:
    from xzctl.cli import app

    root = typer.main.get_command(app)
    rows = _rows(root, typer.Context(root, info_name="xzctl"), "xzctl")
    lines = ["| command | what it answers or does |", "|---|---|"]
    lines += [f"| `{usage}` | {_cell(text)} |" for usage, text in rows]
    return "\n".join(lines) + "\n"


def exit_codes() -> str:
    lines = ["| code | meaning |", "|---|---|"]
    lines += [f"| {code} | {_cell(meaning)} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(lines) + "\n"


GENERATORS = {"commands": command_map, "exit-codes": exit_codes}


def regenerate(readme: str) -> str:
    """The README with every generated block rewritten from the code."""
    return BLOCK.sub(lambda m: m.group(1) + GENERATORS[m.group("name")]() + m.group(4), readme)
