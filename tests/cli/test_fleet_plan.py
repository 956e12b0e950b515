"""`xzctl fleet plan` through the CLI entry point."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tests.fixtures.golden import assert_golden
from xzctl.cli import run
from xzctl.cli._layout import SUMMARY_ROWS
from xzctl.cli.fleet import _plan_table
from xzctl.plan import Plan, PlanRow, Verdict, build_plan
from xzctl.spec import Fleet, bundled_example_path


def test_table_shows_verdicts_and_the_seed_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "plan", "--fleet", str(bundled_example_path())]) == 0
    out = capsys.readouterr().out
    for text in (
        "N+1: each region (and the fleet) loses its largest edge node",
        "lose bj-edge-01",
        "100 devices left without an edge node",
        "32 / 32",
        "¥1,450,000",
        "1.1 y / 2.0 y",
        "xiaozhi-1000: 4 fail, 5 warn, 18 ok",
    ):
        assert text in out, text


def test_json_and_yaml_carry_the_same_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "plan", "-o", "json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert run(["fleet", "plan", "-o", "yaml"]) == 0
    as_yaml = yaml.safe_load(capsys.readouterr().out)
    assert as_json == as_yaml
    failing = {(r["section"], r["subject"]) for r in as_json["rows"] if r["verdict"] == "fail"}
    assert failing == {
        ("n+1", "beijing"),
        ("n+1", "shanghai"),
        ("n+1", "guangzhou"),
        ("n+1", "fleet"),
    }


def test_check_exits_1_when_a_row_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["fleet", "plan", "--check", "-o", "json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["summary"]["fail"] == 4  # the report is still printed for the CI log
    assert "error" not in captured.err  # a failing plan is a result, not an error
    assert run(["fleet", "plan", "--check"]) == 1
    reasons = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fail: ")]
    assert len(reasons) == 4 and reasons[0].startswith("fail: n+1 beijing: ")


def test_check_exits_0_when_the_plan_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = yaml.safe_load(bundled_example_path().read_text(encoding="utf-8"))
    doc["cloud"]["llm_models"][1]["replicas"] = 0  # 32 GPUs for qwen-72b only: fits 4 x 8
    for region in doc["regions"].values():
        for node in region["edge_nodes"]:
            node["devices"] = 60  # every region keeps all devices after losing a node
    doc["kpis"]["throughput"]["concurrent_devices"] = 420
    doc["cost"]["revenue_per_device_year"] = 10_000  # fewer devices must still pay for the hardware
    doc["cost"]["thresholds"]["max_cost_per_device_month"] = 500
    spec = tmp_path / "fleet.yaml"
    spec.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert run(["fleet", "plan", "--check", "--fleet", str(spec), "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["fail"] == 0


def test_invalid_spec_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text("apiVersion: [\n", encoding="utf-8")
    assert run(["fleet", "plan", "--fleet", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"xzctl: error: {spec}:" in err and "YAML syntax error" in err


def test_table_matches_golden_at_80_columns(example_fleet: Fleet) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, color_system=None, highlight=False)
    _plan_table(build_plan(example_fleet), console, wide=False)
    assert_golden(Path(__file__).parent / "golden" / "fleet-plan-table.txt", buffer.getvalue())


@pytest.mark.parametrize(("wide", "lines"), [(False, SUMMARY_ROWS), (True, 3_000)])
def test_thousands_of_node_rows_summarise_unless_wide(wide: bool, lines: int) -> None:
    # distinct rows (no two merge): one GPU row per edge node, every 100th over its slots
    rows = [
        PlanRow(
            "edge-gpu",
            f"edge-{i:04d}",
            "GPU slots",
            i % 7,
            8,
            "slots",
            Verdict.FAIL if i % 100 == 0 else Verdict.OK,
            "-",
        )
        for i in range(3_000)
    ]
    buffer = io.StringIO()
    _plan_table(Plan("big", rows), Console(file=buffer, width=80, color_system=None), wide=wide)
    out = buffer.getvalue()
    assert sum(" edge-" in line for line in out.splitlines()) == lines
    summary = "3,000 rows (30 fail, 2,970 ok): the 20 worst shown"
    assert (summary in " ".join(out.split())) is not wide
    if not wide:  # the worst are the fail rows
        assert all(f"edge-{i:04d}" in out for i in range(0, 3_000, 100)[:SUMMARY_ROWS])
