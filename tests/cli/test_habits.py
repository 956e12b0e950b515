"""kubectl-grade habits: --version, -h, global flags anywhere, completion, a closed pipe is not a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.fixtures.cli import leaf_commands
from xzctl.cli import run
from xzctl.spec import bundled_example_path

REPO = Path(__file__).resolve().parents[2]


def test_version_and_short_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"xzctl {version('xzctl')}"
    assert run(["fleet", "plan", "-h"]) == 0
    assert "Usage: xzctl fleet plan" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["fleet", "validate", "--debug", "-o", "json"],
        ["--debug", "fleet", "validate", "-o", "json"],
        ["-o", "json", "fleet", "validate"],
        ["--fleet", str(bundled_example_path()), "-o", "json", "fleet", "validate"],
        ["fleet", "validate", "--example", "-o", "json"],
    ],
)
def test_global_flags_anywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True


def test_debug_after_the_subcommand_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "validate", "--fleet", str(tmp_path / "absent.yaml"), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_closed_pipe_exits_0() -> None:
    # `xzctl fleet example --nodes 1000 | head -1`: the reader stops early; that is not a failed check. The output
    # (240 kB) is far larger than a pipe's buffer (64 kB), so the writer does meet the closed pipe.
    plan = subprocess.Popen(
        [sys.executable, "-m", "xzctl", "fleet", "example", "--nodes", "1000"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert plan.stdout is not None and plan.stderr is not None
    plan.stdout.readline()
    plan.stdout.close()
    err = plan.stderr.read().decode()
    assert plan.wait(timeout=60) == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["completion", shell]) == 0
    assert "_XZCTL_COMPLETE" in capsys.readouterr().out


def test_completion_answers() -> None:
    env = {**os.environ, "_XZCTL_COMPLETE": "complete_bash", "COMP_WORDS": "xzctl fleet p", "COMP_CWORD": "2"}
    argv = [sys.executable, "-m", "xzctl"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.split() == ["plan"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30.0), ("1.5", 1.5), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("7d", 604800.0)]
)
def test_one_duration_type(text: str, seconds: float) -> None:
    from xzctl.cli._common import duration, promql_duration

    assert duration(text) == seconds
    assert promql_duration(text, "--window") == (text if text[-1].isalpha() else f"{round(seconds)}s")


@pytest.mark.parametrize(
    "argv", [["capacity", "report", "--interval", "soon"], ["sandbox", "scenario", "stale", "--for", "x"]]
)
def test_a_bad_duration_names_the_flag(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 2
    assert "is not a duration: e.g. 30 (seconds)" in capsys.readouterr().err


# Commands whose product is files or an action, not a report to read.
NO_OUTPUT = {
    "bootstrap inventory",  # its output is the Ansible inventory YAML itself
    "completion",
    "config use-context",
    "config set-context",
    "loadtest worker",  # joins a master's run; the master reports
    "render alerts",
    "render manifests",
    "render node-config",
    "render region",
    "sandbox down",
}


def test_every_read_command_takes_output() -> None:
    lacking = [
        path
        for path, command in leaf_commands()
        if path not in NO_OUTPUT and "output" not in {p.name for p in command.params}
    ]
    assert lacking == []


@pytest.mark.parametrize(
    "argv",
    [
        ["runbook", "EdgeNodeDown", "-o", "json"],
        ["runbook", "--list", "-o", "json"],
        ["fleet", "example", "-o", "json"],
        ["fleet", "example", "--nodes", "3", "-o", "json"],
        ["config", "get-contexts", "-o", "json"],
    ],
)
def test_json_documents(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)
