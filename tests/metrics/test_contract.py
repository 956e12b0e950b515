"""The histogram buckets resolve what the rollout analysis compares: a canary judged at `latency_vs_stable` times its
stable's p95 must not fail for landing one bucket higher (histogram_quantile interpolates inside a bucket)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from xzctl.metrics import contract as c
from xzctl.rollout.state import Thresholds
from xzctl.spec.models import LatencyKpi


def _steps(buckets: tuple[float, ...], low: float, high: float) -> list[float]:
    inside = [b for b in buckets if low <= b <= high]
    return [b / a for a, b in pairwise(inside)]


@pytest.mark.parametrize(
    ("buckets", "low", "high"),
    [(c.LATENCY_BUCKETS, 0.01, 5.0), (c.TURN_BUCKETS, 0.1, 5.0)],
    ids=["request", "turn"],
)
def test_bounds_step_at_most_the_resolution_where_the_kpis_sit(
    buckets: tuple[float, ...], low: float, high: float
) -> None:
    assert list(buckets) == sorted(set(buckets))
    steps = _steps(buckets, low, high)
    assert steps and max(steps) <= c.RESOLUTION + 1e-9, max(steps)
    assert buckets[0] <= low and buckets[-1] >= high


def test_the_relative_latency_check_is_coarser_than_one_bucket_step() -> None:
    assert Thresholds.model_fields["latency_vs_stable"].default > c.RESOLUTION


@pytest.mark.parametrize("kpi_ms", sorted(set(LatencyKpi().by_service().values())))
def test_every_default_latency_kpi_is_a_bucket_bound(kpi_ms: int) -> None:
    # the SLO's bad events are the requests above a bound: a KPI between bounds is read at the one below it
    assert kpi_ms / 1000 in c.LATENCY_BUCKETS
