"""Asking per region: answers by region, a failing region reported as unknown, malformed queries raised, a bound."""

from __future__ import annotations

import threading
import time

import pytest

from xzctl.errors import BadInputError, UnknownStateError
from xzctl.prom.regions import per_region

REGIONS = ["beijing", "shanghai", "guangzhou", "shenzhen", "chengdu", "wuhan"]


@pytest.mark.parametrize(
    ("failing", "answered"),
    [
        (set(), set(REGIONS)),
        ({"shanghai"}, set(REGIONS) - {"shanghai"}),
        ({"beijing", "wuhan"}, set(REGIONS) - {"beijing", "wuhan"}),
        (set(REGIONS), set()),
    ],
)
def test_a_region_that_does_not_answer_is_unknown_and_the_others_stand(failing: set[str], answered: set[str]) -> None:
    def ask(region: str) -> str:
        if region in failing:
            raise UnknownStateError(f"{region}'s Prometheus did not answer")
        return region.upper()

    got = per_region(REGIONS, ask)
    assert got.answers == {r: r.upper() for r in answered}
    assert {r: e.message for r, e in got.failed.items()} == {r: f"{r}'s Prometheus did not answer" for r in failing}


def test_a_refused_query_is_a_bug_and_raised() -> None:
    def ask(region: str) -> str:
        raise BadInputError(f"Prometheus refused the query for {region}")

    with pytest.raises(BadInputError):
        per_region(REGIONS, ask)


@pytest.mark.parametrize("parallel", [1, 2, 4])
def test_regions_are_asked_at_most_parallel_at_once(parallel: int) -> None:
    lock = threading.Lock()
    now, peak = [0], [0]

    def ask(region: str) -> str:
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.02)  # long enough for the pool's other workers to start meanwhile
        with lock:
            now[0] -= 1
        return region

    assert set(per_region(REGIONS, ask, parallel=parallel).answers) == set(REGIONS)
    assert 1 <= peak[0] <= parallel


def test_no_regions_asks_nothing() -> None:
    got = per_region([], lambda region: region)
    assert (got.answers, got.failed) == ({}, {})
