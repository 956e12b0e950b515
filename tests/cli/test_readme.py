"""The README's command map and exit-code table are generated from the code; this fails when they drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from xzctl import errors
from xzctl.cli._readme import command_map, regenerate
from xzctl.errors import EXIT_CODES, ExitCode

REPO = Path(__file__).resolve().parents[2]


def test_readme_blocks_match_the_code() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "<!-- generated: commands -->" in readme and "<!-- generated: exit-codes -->" in readme
    assert regenerate(readme) == readme, "README.md is out of date: run python scripts/readme.py"


def test_the_script_checks() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "readme.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_stale_block_is_rewritten() -> None:
    stale = "x\n<!-- generated: exit-codes -->\n| 9 | gone |\n<!-- end generated -->\ny\n"
    fresh = regenerate(stale)
    assert "| 9 | gone |" not in fresh and "| 130 | interrupted (Ctrl-C) |" in fresh
    assert fresh.startswith("x\n") and fresh.endswith("y\n")


def test_every_exit_code_and_error_class_is_in_the_table() -> None:
    codes = {v for k, v in vars(ExitCode).items() if not k.startswith("_")}
    assert codes == set(EXIT_CODES)
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.XzctlError)]
    assert {c.exit_code for c in classes} <= set(EXIT_CODES)


def test_every_command_is_in_the_map() -> None:
    table = command_map()
    for command in ("xzctl fleet plan", "xzctl config use-context NAME", "xzctl completion SHELL", "xzctl runbook"):
        assert f"| `{command}" in table
