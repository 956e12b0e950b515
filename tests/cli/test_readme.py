"""The README's command map and exit-code table are generated from the code; this fails when they drift."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from xzctl import errors
from xzctl.checks.window import MIN_SCRAPES
from xzctl.cli import run
from xzctl.cli._readme import command_map, regenerate
from xzctl.errors import EXIT_CODES, ExitCode
from xzctl.sandbox import SandboxInfo
from xzctl.sandbox.ready import wait_scraped

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


def walkthrough() -> list[str]:
    """The commands of the README's "A day with xzctl" block, as written (comments dropped)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("## A day with xzctl", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


# What a test machine lacks for a line, said rather than hidden: each stands in for the line as written.
STAND_INS = {
    "bootstrap": "real hosts over SSH: --check runs against a local sshd in tests/bootstrap",
    "sandbox up": "the session's sandbox (1 s scrapes, no 7-day backfill: tests/sandbox/test_ready.py)",
    "rollout canary": "20 minutes of analysis at --interval 60s --checks 5: the same line with --dry-run",
}
# Exit codes of the bundled example, on purpose: its alert rules contradict its KPIs (two warnings, so --strict
# refuses it) and its plan has a failing row; a live verdict may be ok, warn or crit, never an error.
EXPECTED = {
    "fleet validate": {2},
    "fleet plan": {1},
    "capacity report": {0, 1},
    "check all": {0, 1},
    "images diff": {0, 1},
}


@pytest.mark.live
def test_the_walkthrough_runs_as_written(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # a fresh clone's folder: ./out and ./gitops do not exist yet
    monkeypatch.setenv("XZCTL_STATE_DIR", str(sandbox.state_dir))
    monkeypatch.setenv("XZCTL_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("PROM_URL", sandbox.prometheus_url)
    assert run(["config", "set-context", "staging", "--state-dir", str(sandbox.state_dir)]) == 0
    lines = walkthrough()
    assert len(lines) >= 10 and lines[0].startswith("xzctl fleet validate")
    for line in lines:
        words = [os.path.expandvars(w) for w in shlex.split(line) if "=" not in w.split("-", 1)[0]]
        assert words[0] == "xzctl", line
        redirect = words[words.index(">") + 1] if ">" in words else None  # the shell's `> FILE`
        args = words[1 : words.index(">")] if redirect else words[1:]
        command = " ".join(args[:2])
        if command == "bootstrap region":
            continue  # STAND_INS["bootstrap"]
        if command == "sandbox up":  # STAND_INS["sandbox up"], returning when `sandbox up` would
            assert wait_scraped(sandbox, MIN_SCRAPES, timeout=60)
            continue
        if command == "rollout canary":
            args.append("--dry-run")
        capsys.readouterr()
        code = run(args)
        out, err = capsys.readouterr()
        assert code in EXPECTED.get(command, {0}), f"{line}: exit {code}\n{err}"
        assert "internal error" not in err and "Traceback" not in err, line
        if redirect:
            (tmp_path / redirect).write_text(out, encoding="utf-8")
        if "-o" in args or command == "check all":
            assert isinstance(json.loads(out), dict | list), line  # a document, whatever the verdict
    assert (tmp_path / "out" / "beijing").is_dir() and (tmp_path / "gitops" / "beijing").is_dir()
