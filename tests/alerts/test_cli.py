"""`xzctl render alerts` and `xzctl runbook`: thin commands over the alerts core."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xzctl.alerts import alert_bundle
from xzctl.cli import run
from xzctl.spec import Fleet


def test_render_alerts_writes_the_bundle(
    example_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "alerts"
    assert run(["render", "alerts", "--out", str(out)]) == 0
    expected = alert_bundle(example_fleet)
    for name, text in expected.items():
        assert (out / name).read_text() == text
    assert yaml.safe_load((out / "prometheusrule.yaml").read_text())["kind"] == "PrometheusRule"
    assert json.loads((out / "dashboard.json").read_text())["panels"]
    assert "wrote 4 file(s)" in capsys.readouterr().out


def test_render_alerts_refuses_a_bad_namespace_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "alerts"
    assert run(["render", "alerts", "--out", str(out), "--namespace", "../etc"]) == 2
    assert not out.exists()
    assert "not a DNS label" in capsys.readouterr().err


def test_runbook_renders_lists_and_refuses_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["runbook", "EdgeNodeDown", "--raw"]) == 0
    assert capsys.readouterr().out.startswith("# EdgeNodeDown\n")
    assert run(["runbook", "--list"]) == 0
    assert "CanaryDegraded" in capsys.readouterr().out.split()
    assert run(["runbook", "NoSuchAlert"]) == 2
    assert "no runbook for alert" in capsys.readouterr().err
    assert run(["runbook"]) == 2
