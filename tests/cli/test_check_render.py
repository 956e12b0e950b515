"""The tables people read, from hand-made snapshots, against golden files (XZCTL_UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from tests.fixtures.golden import assert_golden
from tests.fixtures.handmade import metrics, snapshot
from xzctl.checks import capacity_report, cost_check, failover_check
from xzctl.checks.snapshot import NodeMetrics
from xzctl.cli._capacity_table import capacity_table
from xzctl.cli.check import cost_table, failover_table
from xzctl.spec import Fleet

GOLDEN = Path(__file__).parent / "golden"


def _render(draw: Callable[[Console], None]) -> str:
    out = io.StringIO()
    draw(Console(file=out, width=220, color_system=None, force_terminal=False))
    return out.getvalue()


def test_tables_match_golden(example_fleet: Fleet) -> None:
    snap = snapshot(
        example_fleet,
        bj_edge_01=metrics("bj-edge-01", "beijing", devices=145.0, cpu=0.85),
        gz_edge_02=NodeMetrics(node="gz-edge-02", region="guangzhou", problems=["scrape target down (up == 0)"]),
    )
    capacity = capacity_report(snap)
    failover = failover_check(example_fleet, capacity, snap)
    text = _render(lambda c: capacity_table(c, capacity))
    text += _render(lambda c: failover_table(c, failover, None))
    text += _render(lambda c: cost_table(c, cost_check(snap)))
    assert "scrape target down (up == 0)" in text and "cpu 85.0% > KPI 80%" in text
    assert_golden(GOLDEN / "check-tables.txt", text)
