"""Locust runs of fake devices (in a child process: Locust patches its process for gevent).

Each fake turn takes a known latency, so the figures are checked against what the node did; the faults are a node
that stops answering mid-run, a dead node and Ctrl-C; the master/worker mode runs a master and one worker on
loopback.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.loadtest_fakes import run_fake_load
from xzctl.metrics import contract as c
from xzctl.sandbox.processes import free_port

pytestmark = pytest.mark.live
WS, OTA = "ws://127.0.0.1:9/xiaozhi/v1/", "http://127.0.0.1:9/xiaozhi/ota/"


def config(duration: float, devices: int = 4, **extra: Any) -> dict[str, Any]:
    settings = {
        "ws_url": WS,
        "ota_url": OTA,
        "devices": devices,
        "duration": duration,
        "turn_every": 1.0,
        "turn_timeout": 2.0,
    }
    return {"settings": settings, "behaviour": {"latency": 0.3}, **extra}


def test_devices_turn_at_their_pace_and_the_figures_are_the_nodes(tmp_path: Path) -> None:
    port = free_port()
    result = run_fake_load(config(6.0, metrics_port=port, csv_prefix=str(tmp_path / "run")), scrape_after=3)
    assert result["_exit"] == 0 and result["devices"] == 4 and result["failed"] == 0
    assert 16 <= result["turns"] <= 28  # 4 devices, one turn a second each, over 6 s (and the first offset)
    assert result["first_audio_seconds"]["p95"] == pytest.approx(0.3, abs=0.05)
    assert result["stt_seconds"]["p50"] == pytest.approx(0.15, abs=0.02)
    assert result["turn_seconds"]["p50"] == pytest.approx(0.6, abs=0.05)
    assert result["_progress_lines"] >= 5
    assert f'{c.TURN_FIRST_AUDIO_SECONDS.name}_bucket{{track="stable",le="0.5"}}' in result["_metrics"]
    assert f'{c.TURNS.name}{{track="stable",result="failed"}} 0' in result["_metrics"]
    with (tmp_path / "run_stats.csv").open() as f:
        rows = {row["Name"]: row for row in csv.DictReader(f)}
    assert int(rows["first_audio"]["Request Count"]) == result["turns"]  # Locust's CSV: the same stats


def test_a_node_that_stops_answering_counts_timeouts_and_the_run_ends_on_time() -> None:
    duration, timeout = 18.0, 12.0
    cfg = config(duration)
    cfg["settings"]["turn_timeout"] = timeout
    cfg["behaviour"]["stop_after"] = 2.0
    result = run_fake_load(cfg)
    # Each device's first silent turn starts 2-3 s in and times out 3-4 s before the end.
    assert result["failed"] >= 1 and result["failures"] == {"timeout": result["failed"]}
    assert result["turns"] > result["failed"]  # the turns before it stopped were answered
    # The second silent turn is in flight at the end: a run that waits it out (Locust's stop_timeout) ended 9 s late.
    # Half the timeout is room for a loaded machine: 12 s with a 4 s timeout let such a run pass at 14.9 s, and a
    # right one went over at 15.3 s at load 49.
    assert result["elapsed_seconds"] < duration + timeout / 2


def test_a_dead_node_ends_at_once_with_one_line_and_exit_3() -> None:
    cfg = config(60.0)
    cfg["behaviour"]["dead"] = True
    result = run_fake_load(cfg)
    assert result["exit_code"] == 3 and result["_exit"] == 3
    assert result["error"].startswith(f"no xiaozhi server answers at {WS}") and "Connection refused" in result["error"]
    assert result["_progress_lines"] == 0


def test_ctrl_c_gives_the_figures_so_far() -> None:
    result = run_fake_load(config(60.0, devices=3), interrupt_after=3)
    assert result["interrupted"] is True and result["turns"] > 0
    assert result["elapsed_seconds"] < 30


def test_a_master_and_one_worker_on_loopback() -> None:
    result = run_fake_load(config(6.0, devices=3, workers=1))
    assert result["_exit"] == 0 and result["devices"] == 3 and result["failed"] == 0
    assert result["turns"] >= 10  # the worker's devices, reported to the master's stats
    assert result["first_audio_seconds"]["p50"] == pytest.approx(0.3, abs=0.05)
