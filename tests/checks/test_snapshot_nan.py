"""NaN and ±Inf are missing data in every trust rule of a node (staleness included), never fresh or ok."""

from __future__ import annotations

import math

import pytest

from xzctl.checks.snapshot import NodeMetrics, _problems
from xzctl.spec import Fleet

NAN, INF = math.nan, math.inf


def _metrics(
    *,
    devices: float = 100.0,
    cpu: float = 0.5,
    memory: float = 0.5,
    gpu: float = 0.5,
    queue: float = 1.0,
    error_ratio: float = 0.0,
    cache_hit: float = 0.9,
) -> NodeMetrics:
    latency = dict.fromkeys(["vad", "asr", "tts", "llm", "end_to_end"], 0.2)
    return NodeMetrics(
        node="bj-edge-01",
        region="beijing",
        devices=devices,
        cpu=cpu,
        memory=memory,
        gpu=gpu,
        latency_p95=latency,
        error_ratio=error_ratio,
        queue=queue,
        cache_hit=cache_hit,
    )


@pytest.mark.parametrize(
    ("up", "age", "values", "fragment"),
    [
        (1.0, 5.0, {}, None),  # healthy: no problem
        (1.0, NAN, {}, "no xiaozhi_active_devices series"),  # NaN age is not "fresh"
        (1.0, INF, {}, "no xiaozhi_active_devices series"),
        (1.0, -INF, {}, "no xiaozhi_active_devices series"),
        (NAN, 5.0, {}, "no scrape target"),
        (INF, 5.0, {}, "no scrape target"),
        (1.0, 5.0, {"cpu": NAN}, "CPU utilization is NaN"),
        (1.0, 5.0, {"memory": INF}, "memory utilization is inf"),
        (1.0, 5.0, {"devices": NAN}, "active devices is NaN"),
        (1.0, 5.0, {"queue": -INF}, "queue size is -inf"),
    ],
)
def test_non_finite_numbers_are_missing_data(
    example_fleet: Fleet, up: float, age: float, values: dict[str, float], fragment: str | None
) -> None:
    problems = _problems(example_fleet.node("bj-edge-01"), _metrics(**values), up, age, 10.0)
    if fragment is None:
        assert problems == []
    else:
        assert problems and fragment in problems[0]
