"""The forecast's history: gaps, gauge resets, steps and unusual days repaired and reported, never hidden."""

from __future__ import annotations

import math
import re

import pytest

from xzctl.checks.forecast_history import HOUR, clean, unusual_days
from xzctl.errors import UnknownStateError

START = 1_780_000_000 // 3600 * 3600 - 30 * 86400  # a fixed hour, whatever its weekday


def _weekly(hours: int, level: float = 100.0) -> list[float]:
    """A day shape and weekends at 70 %: what a region's devices look like, without noise."""
    day = [0.4 + 0.6 * math.sin(math.pi * (h % 24) / 24) for h in range(24)]
    return [level * day[h % 24] * (0.7 if (h // 24) % 7 >= 5 else 1.0) for h in range(hours)]


def _points(values: list[float], skip: range = range(0)) -> list[tuple[float, float]]:
    return [(START + h * HOUR, v) for h, v in enumerate(values) if h not in skip]


def test_a_clean_history_is_left_alone() -> None:
    values = _weekly(21 * 24)
    history = clean(_points(values), START, len(values), min_hours=84)
    assert history.values == values and history.fit_values == values
    assert history.notes("r") == []


def test_a_gap_is_filled_from_the_week_before_and_reported() -> None:
    values = _weekly(15 * 24)
    history = clean(_points(values, skip=range(200, 206)), START, len(values), min_hours=84)
    assert history.gaps == [(START + 200 * HOUR, 6)]
    assert history.values[200:206] == pytest.approx(values[200:206])  # the same hours a week before
    (note,) = history.notes("beijing")
    assert note.startswith("beijing: 6 hours of history missing (6 h from ") and "filled from a week before" in note


def test_a_gauge_reset_is_replaced_and_reported() -> None:
    values = _weekly(15 * 24)
    broken = list(values)
    broken[250:252] = [0.0, 0.0]  # the exporter restarted
    history = clean(_points(broken), START, len(values), min_hours=84)
    assert history.resets == [START + 250 * HOUR, START + 251 * HOUR]
    assert history.values[250:252] == pytest.approx(values[250:252])
    assert "2 hour(s) look like a gauge reset" in history.notes("r")[0]


@pytest.mark.parametrize(("days", "after", "scaled"), [(28, 16 * 24, False), (21, 5 * 24, True)])
def test_a_step_change_is_found_and_the_model_fits_after_it(days: int, after: int, scaled: bool) -> None:
    values = _weekly(days * 24)
    at = len(values) - after
    stepped = values[:at] + [v * 1.6 for v in values[at:]]
    history = clean(_points(stepped), START, len(values), min_hours=84)
    assert history.step is not None
    when, factor = history.step
    assert abs(when - (START + at * HOUR)) <= 4 * HOUR and factor == pytest.approx(1.6, rel=0.05)
    assert history.scaled_before_step is scaled
    if scaled:  # too few hours after it: the hours before are brought to the new level
        assert history.fit_from == 0 and history.values[0] == pytest.approx(1.6 * values[0], rel=0.05)
    else:
        assert len(history.fit_values) == pytest.approx(after, abs=4)
    assert re.search(r"the level changed x1\.(59|6) at .* UTC \(a step\)", history.notes("r")[-1])


def test_a_holiday_is_not_a_step() -> None:
    values = _weekly(21 * 24)
    values[10 * 24 : 11 * 24] = [v * 0.5 for v in values[10 * 24 : 11 * 24]]
    assert clean(_points(values), START, len(values), min_hours=84).step is None


def test_an_unusual_day_is_scaled_to_its_weekday_and_reported() -> None:
    values = _weekly(21 * 24)
    values[10 * 24 : 11 * 24] = [v * 0.5 for v in values[10 * 24 : 11 * 24]]
    usual, found = unusual_days(values, START)
    ((when, factor),) = found
    assert when == START + 10 * 24 * HOUR and factor == pytest.approx(0.5)
    assert usual == pytest.approx(_weekly(21 * 24))
    assert unusual_days(values[: 20 * 24], START)[1] == []  # under three weeks: no weekday's median to trust


def test_history_that_starts_late_is_cut_to_what_is_held() -> None:
    values = _weekly(7 * 24)
    asked = 14 * 24
    history = clean(
        [(START + (asked - len(values) + h) * HOUR, v) for h, v in enumerate(values)], START, asked, min_hours=84
    )
    assert history.start == START + 7 * 24 * HOUR and history.values == values and history.gaps == []


def test_too_many_missing_hours_are_refused() -> None:
    values = _weekly(100)
    with pytest.raises(UnknownStateError, match="49 of 99 hours of history are missing"):
        clean(_points(values, skip=range(1, 100, 2)), START, 100, min_hours=84)
