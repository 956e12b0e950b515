"""`xzctl --help` stays light, every command of fleet/render documents an example, the installed script works."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys

import pytest

from xzctl.cli import _command_modules, _load, run

HEAVY = ("pulumi", "pulumi_kubernetes", "kubernetes", "kubernetes_validate", "ansible_runner", "ansible")


def test_help_imports_no_heavy_module() -> None:
    probe = (
        "import json, sys\n"
        "from xzctl.cli import run\n"
        "code = run(['--help'])\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "ours = sorted(m for m in sys.modules if m.startswith('xzctl'))\n"
        "print(json.dumps({'code': code, 'heavy': heavy, 'xzctl': ours}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Command modules load on use only: the root help reads their docstrings from source. redact: the error masking.
    assert result == {"code": 0, "heavy": [], "xzctl": ["xzctl", "xzctl.cli", "xzctl.errors", "xzctl.redact"]}
    assert "fleet" in done.stdout and "render" in done.stdout


def test_root_help_lists_every_command_module_without_importing_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Example: xzctl fleet plan" in out
    assert "fleet validate|plan|example: the fleet spec itself" in out
    assert "render node-config|region|manifests|alerts: the files the fleet runs on" in out


def test_root_help_names_every_command_of_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    # The root lists groups from their docstrings without importing them: a verb missing there is invisible.
    assert run(["--help"]) == 0
    listed = {
        line.split()[0]: set(line.split()[1].rstrip(":").split("|"))
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("  ") and len(line.split()) > 1 and not line.startswith("   ")
    }
    for name, module in _command_modules().items():
        group = _load(name, module)
        missing = set(getattr(group, "commands", {})) - listed[name]
        assert not missing, f"xzctl --help does not name {name} {sorted(missing)}"


def test_a_flag_shows_no_value_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sandbox", "up", "--help"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "--force" in line or "--kubernetes" in line]
    assert len(lines) == 2 and not [line for line in lines if "<bool>" in line]  # `--force`, not `--force <bool>`


@pytest.mark.parametrize("group", ["fleet", "render"])
def test_every_command_help_has_an_example(group: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(f"xzctl.cli.{group}")
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in module.app.registered_commands]
    assert names
    for name in names:
        assert run([group, name.replace("_", "-"), "--help"]) == 0
        out = capsys.readouterr().out
        assert f"Example: xzctl {group} " in out, f"xzctl {group} {name} --help has no example"


def test_installed_script_runs_the_plan() -> None:
    xzctl = shutil.which("xzctl")
    if xzctl is None:
        pytest.skip("the xzctl console script is not installed (pip install -e .)")
    done = subprocess.run(
        [xzctl, "fleet", "plan", "-o", "json", "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["summary"] == {"ok": 18, "warn": 5, "fail": 4}
    assert "xzctl: error" not in done.stderr  # a verdict, not an error
    assert "Traceback" not in done.stderr


def test_every_group_and_command_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.fixtures.cli import leaf_commands
    from xzctl.cli import _command_modules

    for group in _command_modules():
        assert run([group, "--help"]) == 0
        assert f"Example: xzctl {group}" in capsys.readouterr().out, f"xzctl {group} --help has no example"
    for path, _ in leaf_commands():
        assert run([*path.split(), "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert re.search(rf"Example( \([^)]*\))?: \S*\s?xzctl {path.split()[0]}", text), f"xzctl {path} has no example"
