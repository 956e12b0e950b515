"""The sandbox's real node, run from the package: real services, a speaking load generator scored by word error
rate, and a slower ASR canary (Whisper's full 30 s window) that real measurements tell apart from stable."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import requests

from xzctl import service_contract as sc
from xzctl.errors import BadInputError
from xzctl.sandbox.realnode import (
    MAX_SERVER_PROCESSES,
    RealNode,
    scaled_devices,
    scaled_processes,
    set_asr_split,
    start_asr_replica,
    start_real_node,
    stop_real_node,
)
from xzctl.spec import load_fleet

WAIT = 240.0  # seconds for enough turns on a loaded 2-core machine


def _sum_count(metrics: str, metric: str, **labels: str) -> tuple[float, float]:
    """Sum and count of a histogram's series whose labels include `labels`."""
    total = {"sum": 0.0, "count": 0.0}
    for line in metrics.splitlines():
        match = re.match(rf"{metric}_(sum|count)\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(2) for k, v in labels.items()):
            total[match.group(1)] += float(match.group(3))
    return total["sum"], total["count"]


def _counter(metrics: str, metric: str, **labels: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(metric + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())
    )


def test_devices_scale_to_the_local_cores() -> None:
    node = load_fleet(None).fleet.edge_nodes()[0]
    assert scaled_devices(node, cores=node.capacity.cpu_cores) == node.devices
    assert scaled_devices(node, cores=2) == round(node.devices * 2 / node.capacity.cpu_cores)
    assert scaled_devices(node, cores=64) == node.devices  # never more than the node's own load


@pytest.mark.parametrize(
    ("node_cores", "processes", "local_cores", "runs"),
    [
        (16, None, 2, 1),  # the example's 4 (one per 4 cores) on this 2-core machine
        (16, None, 16, 4),
        (16, 8, 4, 2),
        (16, 8, 64, 8),  # never more than the node's own
        (2, 2, 2, 2),
        (16, 1, 1, 1),  # at least one
    ],
)
def test_server_processes_scale_to_the_local_cores(
    node_cores: int, processes: int | None, local_cores: int, runs: int
) -> None:
    node = load_fleet(None).fleet.edge_nodes()[0]
    server = node.services.xiaozhi_server.model_copy(update={"processes": processes})
    node = node.model_copy(
        update={
            "capacity": node.capacity.model_copy(update={"cpu_cores": node_cores}),
            "services": node.services.model_copy(update={"xiaozhi_server": server}),
        }
    )
    assert scaled_processes(node, cores=local_cores) == runs


@pytest.mark.parametrize("processes", [0, MAX_SERVER_PROCESSES + 1])
def test_a_server_process_count_this_machine_cannot_run_is_refused_before_anything_starts(
    tmp_path: Path, processes: int
) -> None:
    fleet = load_fleet(None).fleet
    with pytest.raises(BadInputError, match="--server-processes"):
        start_real_node(fleet, "bj-edge-01", state_dir=tmp_path, log_dir=tmp_path / "logs", server_processes=processes)
    assert not (tmp_path / "logs").exists()


@pytest.mark.images  # the real inference services and load generator, as processes
@pytest.mark.latency
def test_a_slower_asr_canary_shows_in_real_latency_and_every_turn_is_scored(tmp_path: Path) -> None:
    os.environ.setdefault("XZCTL_IMAGE_CACHE", str(Path.home() / ".cache" / "xzctl" / "images"))
    fleet = load_fleet(None).fleet
    real: RealNode = start_real_node(
        fleet, "bj-edge-01", state_dir=tmp_path / "state", log_dir=tmp_path / "logs", devices=2, turn_interval=1.0
    )
    try:
        assert all(s.source == "package" for s in real.all())
        targets = real.scrape_targets()
        assert len(targets) == 4 and all(t["labels"]["node"] == "bj-edge-01" for t in targets)
        stable = real.services["asr"]
        canary = start_asr_replica(
            real,
            state_dir=tmp_path / "state",
            log_dir=tmp_path / "logs",
            track="canary",
            # faster-whisper's 30 s window instead of one sized to the audio: ~10x the encoder's work
            env={
                sc.WHISPER_PAD_SECONDS_ENV: "28",
                sc.IMAGE_ENV: "registry.xiaozhi.example/inference/asr:2.0.0-full-window",
            },
        )
        assert len(real.scrape_targets()) == 5
        set_asr_split(real, [(stable, "stable", 0.5), (canary, "canary", 0.5)])
        assert real.loadgen is not None
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            turns = requests.get(f"{real.loadgen.url}/metrics", timeout=10).text
            done = [_counter(turns, "xiaozhi_requests_total", track=t, result="ok") for t in ("stable", "canary")]
            if min(done) >= 4:
                break
            time.sleep(1.0)
        else:
            pytest.fail(f"fewer than 4 turns per track in {WAIT:.0f} s: {done}")
        # accuracy is measured on every scored turn, per track and image
        for track in ("stable", "canary"):
            words = _counter(turns, "xiaozhi_asr_reference_words_total", track=track)
            assert words > 0 and _counter(turns, "xiaozhi_asr_word_errors_total", track=track) >= 0
        assert 'image="registry.xiaozhi.example/inference/asr:2.0.0-full-window"' in turns
        # the canary's own latency histogram says it is slower: its encoder runs on 30 s, not on the utterance
        means = {}
        for service in (stable, canary):
            text = requests.get(f"{service.url}/metrics", timeout=10).text
            total, count = _sum_count(text, "xiaozhi_request_duration_seconds", service="asr")
            means[service.port] = total / count
        assert means[canary.port] > 1.2 * means[stable.port], means
    finally:
        stop_real_node(real)
    assert all(s.process.poll() is not None for s in real.all())
