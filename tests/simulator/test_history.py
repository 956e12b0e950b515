"""Backfill history: deterministic OpenMetrics that promtool turns into TSDB blocks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from xzctl.errors import BadInputError
from xzctl.simulator.history import SAMPLE_BUDGET, history_step, write_openmetrics_history
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


def test_long_histories_coarsen_the_step_to_stay_in_budget(example_fleet: Fleet) -> None:
    week = 7 * 86400
    step = history_step(example_fleet, week)
    assert step % 60 == 0 and step > 60
    assert 200 * len(example_fleet.edge_nodes()) * week / step <= SAMPLE_BUDGET
    with pytest.raises(BadInputError):
        write_openmetrics_history(example_fleet, None, seed=0, end=END, span_seconds=90 * 86400)  # type: ignore[arg-type]
