"""How errors reach the operator: one line and an exit code, or the traceback with --debug."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xzctl.cli import run


def test_an_error_is_one_line_and_debug_adds_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert run(["fleet", "plan", "--fleet", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"xzctl: error: {missing}: no such file; fix: pass --fleet FILE or set XZCTL_FLEET\n"

    assert run(["--debug", "fleet", "plan", "--fleet", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "FleetSpecError" in err
    assert err.endswith(f"xzctl: error: {missing}: no such file; fix: pass --fleet FILE or set XZCTL_FLEET\n")

    # --debug holds for its own run only: the next one fails before the root callback, and stays one line
    assert run(["no-such-group"]) == 2
    assert capsys.readouterr().err.startswith("xzctl: error: No such command")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fleet", "plan", "--output", "xml"], "Invalid value for '--output' / '-o'"),
        (["fleet", "plan", "--bogus"], "No such option: --bogus"),
        (["no-such-group"], "No such command 'no-such-group'"),
    ],
)
def test_usage_errors_are_exit_2_in_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("xzctl: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("form", [["-o", "json"], ["--output=json"], ["-ojson"], ["--output", "JSON"]])
def test_a_failure_asked_for_as_json_is_a_json_document(
    form: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert run(["fleet", "plan", "--fleet", str(missing), *form]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "status": "error",
        "error": f"{missing}: no such file; fix: pass --fleet FILE or set XZCTL_FLEET",
        "exit_code": 2,
    }
    assert err.startswith("xzctl: error: ")  # the line on stderr stays
