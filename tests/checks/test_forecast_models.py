"""The model choice: the backtest's plan for the history held, the seasonal naive kept when nothing beats it."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from xzctl.checks.forecast_daytypes import NAME as DAY_TYPES
from xzctl.checks.forecast_models import (
    MIN_HISTORY,
    NAIVE,
    Window,
    calibrate,
    forecast_series,
    mape,
    plan,
)
from xzctl.errors import UnknownStateError


@pytest.mark.parametrize(
    ("hours", "horizon", "expected", "said"),
    [
        (
            84,
            168,
            (24, 12, (24,)),
            ["judged 12 h ahead, not 168: --days 16", "not modelled on 3.5 days of history (--days 23"],
        ),
        (7 * 24, 168, (24, 72, (24,)), ["judged 72 h ahead, not 168: --days 16", "on 7 days of history (--days 23 is"]),
        (14 * 24, 168, (168, 120, (24,)), ["judged 120 h ahead, not 168: --days 16", "(--days 23 is enough)"]),
        (14 * 24, 24, (168, 24, (24,)), ["(--days 17 is enough)"]),
        (28 * 24, 168, (168, 168, (24, 168)), []),
        (28 * 24, 24, (168, 24, (24, 168)), []),
    ],
)
def test_the_backtest_fits_the_history_held(
    hours: int, horizon: int, expected: tuple[int, int, tuple[int, ...]], said: list[str]
) -> None:
    p = plan(hours, horizon)
    lag, backtest, _ = expected
    assert (p.lag, p.backtest_hours, p.seasons) == expected
    assert len(p.cuts) == 3 and p.cuts[-1] + backtest == hours  # the last cut's hours end with the history
    assert p.cuts[0] >= max(lag, 48)  # every cut leaves the naive's lag and two days to fit on
    for text in said:
        assert any(text in note for note in p.notes), (text, p.notes)
    assert len(p.notes) == len(said)


def test_too_short_history_names_the_days_that_would_do() -> None:
    assert MIN_HISTORY == 84
    with pytest.raises(UnknownStateError, match=r"83 hours of history; .* at least 84 .*--days 4"):
        plan(83, 24)


def test_mape() -> None:
    assert mape([100, 200], [110, 180]) == pytest.approx(0.1)
    assert math.isnan(mape([0], [5]))


def _window(actual: list[float], half: float = 10.0) -> Window:
    a = np.asarray(actual, dtype=float)
    mean = np.full(len(a), 100.0)
    return Window(a, mean, mean - half, mean + half)


def test_calibration_scales_a_band_to_what_the_backtest_saw() -> None:
    # The model said +/-10; the actual values strayed up to 20 above and 5 below: far too narrow above.
    windows = [_window([100 + d for d in range(-5, 21)]) for _ in range(3)]
    low, up, coverage = calibrate(windows)
    assert low == pytest.approx(1.9)  # the 95th percentile of |error| / 10
    assert up == pytest.approx(2.0)  # the upper band also reaches the highest value (the peak)
    assert coverage == pytest.approx(1.0)
    # A band far too wide shrinks: errors of at most 1 against a half-width of 10.
    low, up, _ = calibrate([_window([99, 100, 101]) for _ in range(3)])
    assert low == pytest.approx(0.1) and up == pytest.approx(0.1)


def test_the_upper_band_reaches_each_cuts_true_peak() -> None:
    # One cut's peak is 30 above the model's mean (3 half-widths) though most hours are close.
    spiky = _window([100.0] * 40 + [130.0])
    low, up, coverage = calibrate([spiky, _window([100.0] * 41), _window([100.0] * 41)])
    assert low == 0.0 and up == pytest.approx(3.0)
    assert 0.9 < coverage < 1.0  # out of sample, the spike of the first cut was not covered


def _daily(days: int, growth: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    shape = [rng.uniform(50, 150) for _ in range(24)]
    return [shape[h % 24] * (1 + growth * h / 24) for h in range(days * 24)]


def test_when_nothing_beats_the_seasonal_naive_it_is_used_and_said() -> None:
    # Every day the same jagged shape: the same hour yesterday is exact, no model can beat it.
    result = forecast_series(_daily(5, 0.0), 24)
    assert result.model == NAIVE and result.naive_mape == pytest.approx(0.0, abs=1e-9) == result.mape
    assert set(result.candidates) == {NAIVE, "AutoETS", "MSTL", "AutoTheta", "MSTL+AutoTheta"}
    assert any("no model beat the seasonal naive" in note for note in result.notes)
    assert result.values == pytest.approx(_daily(5, 0.0)[-24:])


def test_a_model_that_beats_the_naive_is_chosen_and_both_reported() -> None:
    # +5 %/day: the same hour yesterday is always 5 % short, a model with a trend is not.
    result = forecast_series(_daily(6, 0.05), 24)
    assert result.model != NAIVE
    assert result.mape < result.naive_mape == result.candidates[NAIVE]
    assert result.candidates[result.model] == result.mape
    assert all(lo <= v <= hi for lo, v, hi in zip(result.lower, result.values, result.upper, strict=True))
    assert 0.5 <= result.coverage <= 1.0 and result.backtest_hours == 24


def _noisy_workweek(days: int, seed: int) -> list[float]:
    """Working days of one shape, weekend days of another (peaks later, fewer devices), 4 % noise."""
    rng = np.random.default_rng(seed)
    hours = np.arange(days * 24)
    weekend = (hours // 24) % 7 >= 5
    peak = np.where(weekend, 14, 10)
    d = np.minimum(np.abs(hours % 24 - peak), 24 - np.abs(hours % 24 - peak))
    level = np.where(weekend, 200.0, 300.0) * (0.2 + np.exp(-0.5 * (d / 3.0) ** 2))
    return list(level * rng.lognormal(0.0, 0.04, len(hours)))


def test_with_four_weeks_the_day_types_pool_the_working_days_and_beat_mstl() -> None:
    result = forecast_series(_noisy_workweek(28, seed=5), 24 * 7)
    assert list(result.candidates) == [NAIVE, "AutoETS", "MSTL", DAY_TYPES, "AutoTheta", "MSTL+AutoTheta"]
    scores = {name: score for name, score in result.candidates.items() if score is not None}
    assert len(scores) == len(result.candidates)  # every candidate fitted
    # Twenty working days per hour instead of four Mondays: less of the noise is forecast as season.
    assert scores[DAY_TYPES] < scores["MSTL"] < scores[NAIVE]
    assert result.model == DAY_TYPES and result.mape == scores[DAY_TYPES]
