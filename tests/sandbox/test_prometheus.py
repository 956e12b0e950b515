"""How far back the sandbox's Prometheus (and Thanos Query) look for a sample: past the backfill's step."""

from __future__ import annotations

from datetime import timedelta

import pytest

from xzctl.sandbox.prometheus import DEFAULT_LOOKBACK_SECONDS, lookback_seconds
from xzctl.simulator.history import history_step
from xzctl.spec import Fleet


@pytest.mark.parametrize(
    ("history", "region", "expected"),
    [
        (timedelta(hours=2), None, DEFAULT_LOOKBACK_SECONDS),  # a step of a minute: the default stays
        (timedelta(days=4), None, history_step(3, 4 * 86400)),  # beijing's 3 nodes set the step
        (timedelta(days=4), "shanghai", DEFAULT_LOOKBACK_SECONDS),  # 2 nodes: a step under 5 m
        (timedelta(days=7), "shanghai", history_step(2, 7 * 86400)),
    ],
)
def test_an_instant_query_reaches_the_previous_backfilled_sample(
    example_fleet: Fleet, history: timedelta, region: str | None, expected: int
) -> None:
    got = lookback_seconds(example_fleet, history, region)
    assert got == expected
    assert got >= history_step(3 if region is None else 2, history.total_seconds())
