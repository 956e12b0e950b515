"""Backfill history: deterministic OpenMetrics that promtool turns into TSDB blocks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from xzctl.errors import BadInputError
from xzctl.simulator.history import (
    MAX_STEP_SECONDS,
    REGION_SAMPLE_BUDGET,
    SERIES_PER_NODE,
    coarsest_step,
    history_step,
    write_openmetrics_history,
)
from xzctl.spec import Fleet

END = 1_790_000_000.0


def test_same_arguments_same_history(example_fleet: Fleet, tmp_path: Path) -> None:
    a, b = tmp_path / "a.om", tmp_path / "b.om"
    stats = write_openmetrics_history(example_fleet, a, seed=4, end=END, span_seconds=1800)
    write_openmetrics_history(example_fleet, b, seed=4, end=END, span_seconds=1800)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text()
    assert text.endswith("# EOF\n")
    assert "# TYPE xiaozhi_requests counter" in text  # OpenMetrics names counter families without _total
    assert 'xiaozhi_active_devices{job="xiaozhi-edge",instance="bj-edge-01",region="beijing",node="bj-edge-01"}' in text
    assert stats.step == 60 and stats.end == END and stats.start == END - 1800
    assert text.count("# TYPE ") == len({line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")})
    # the step's budget counts on SERIES_PER_NODE: a node's exposition must not outgrow it (a bucket added, ...)
    per_node = stats.series / len(example_fleet.edge_nodes())
    assert 0.8 * SERIES_PER_NODE <= per_node <= 1.1 * SERIES_PER_NODE, per_node


@pytest.mark.live
def test_promtool_turns_it_into_blocks(example_fleet: Fleet, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    source = tmp_path / "h.om"
    stats = write_openmetrics_history(example_fleet, source, seed=0, end=END, span_seconds=3600)
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(tmp_path / "tsdb")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    blocks = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    assert sum(int(b[4]) for b in blocks) == stats.samples  # the NUM SAMPLES column


@pytest.mark.parametrize(
    ("nodes", "days", "step"),
    [
        (3, 1 / 48, 60),  # small and short: the finest step
        (3, 7, 600),  # coarser to stay in the region's budget
        (50, 3, MAX_STEP_SECONDS),  # a 50-node region over 3 days: capped, so every hour holds two samples
        (50, 35, MAX_STEP_SECONDS),
    ],
)
def test_the_step_follows_a_regions_size_never_past_two_samples_an_hour(nodes: int, days: float, step: int) -> None:
    span = days * 86400
    assert history_step(nodes, span) == step
    if step < MAX_STEP_SECONDS:
        assert SERIES_PER_NODE * nodes * span / step <= REGION_SAMPLE_BUDGET


def test_a_regions_history_holds_only_its_nodes_with_the_fleets_samples(example_fleet: Fleet, tmp_path: Path) -> None:
    whole, beijing = tmp_path / "all.om", tmp_path / "beijing.om"
    write_openmetrics_history(example_fleet, whole, seed=4, end=END, span_seconds=600, step=60)
    stats = write_openmetrics_history(
        example_fleet, beijing, seed=4, end=END, span_seconds=600, step=60, region="beijing"
    )
    lines = [line for line in beijing.read_text().splitlines() if not line.startswith("#")]
    assert lines and all('region="beijing"' in line for line in lines) and stats.samples == len(lines)
    assert set(lines) <= set(whole.read_text().splitlines())
    with pytest.raises(BadInputError, match="no edge nodes"):
        write_openmetrics_history(example_fleet, tmp_path / "x.om", seed=0, end=END, span_seconds=600, region="mars")


def test_history_longer_than_the_forecast_reads_is_refused(example_fleet: Fleet) -> None:
    with pytest.raises(BadInputError, match="35 days"):
        write_openmetrics_history(example_fleet, None, seed=0, end=END, span_seconds=36 * 86400)  # type: ignore[arg-type]


def test_the_coarsest_step_is_the_largest_regions(example_fleet: Fleet) -> None:
    # the example: beijing 3 nodes, shanghai and guangzhou 2; four days need a coarser step for 3 nodes
    span = 4 * 86400
    assert coarsest_step(example_fleet, span) == history_step(3, span) > history_step(2, span)
    assert coarsest_step(example_fleet, span, "shanghai") == history_step(2, span)
