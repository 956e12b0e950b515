"""The rate window of live checks, table-driven: clipped to the data, never shorter than two scrapes."""

from __future__ import annotations

import pytest

from xzctl.checks.window import WindowPlan, default_window, plan_window
from xzctl.errors import BadInputError, UnknownStateError


@pytest.mark.parametrize(
    ("window", "seconds", "interval", "age", "expected"),
    [
        ("5m", 300, 10, None, WindowPlan("5m")),  # no idea of the data's age: trust the window
        ("5m", 300, 10, 3600, WindowPlan("5m")),
        (
            "5m",
            300,
            10,
            40.7,
            WindowPlan(
                "40s",
                "warming up: 41 s of live samples, the 5m window needs 5 m: judged over 40s (the full window in 260 s)",
            ),
        ),
        ("20s", 20, 10, 25, WindowPlan("20s")),
    ],
)
def test_plans(window: str, seconds: float, interval: float, age: float | None, expected: WindowPlan) -> None:
    assert plan_window(window, seconds, interval, age) == expected


def test_too_short_a_window_names_the_scrape_interval() -> None:
    with pytest.raises(BadInputError, match=r"--window 1s is shorter than two scrape intervals \(10 s each\)") as e:
        plan_window("1s", 1, 10, None)
    assert e.value.hint == "use --window 20s or more"


def test_before_three_scrapes_there_is_no_verdict() -> None:
    with pytest.raises(
        UnknownStateError, match="warming up: 12 s of live samples, the 5m window needs 5 m; no verdict"
    ) as e:
        plan_window("5m", 300, 10, 12)
    assert e.value.hint == "wait 8 s (`xzctl sandbox up` waits for this)"


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(1, ("5m", 300)), (10, ("5m", 300)), (75, ("5m", 300)), (120, ("480s", 480)), (300, ("1200s", 1200))],
)
def test_the_default_window_holds_four_scrapes(interval: float, expected: tuple[str, float]) -> None:
    assert default_window(interval) == expected
