"""Day types: the days of the week alike within the noise share one profile, and where a day starts is found."""

from __future__ import annotations

import numpy as np
import pytest

from xzctl.checks.forecast_daytypes import NAME, DayTypeMSTL, day_types

WORKWEEK = (0, 0, 0, 0, 0, 1, 1)  # Monday to Friday alike, the weekend another kind of day


def _profiles() -> list[np.ndarray]:
    """Kinds of day on the log scale: a night floor and peaks at different hours and heights."""
    hours = np.arange(24)
    out = []
    for peak, height in ((9, 1.0), (13, 0.7), (19, 1.2), (4, 0.5), (11, 1.4), (16, 0.9), (22, 0.6)):
        d = np.minimum(np.abs(hours - peak), 24 - np.abs(hours - peak))
        out.append(height * np.exp(-0.5 * (d / 3.0) ** 2))
    return out


def _series(kinds: tuple[int, ...], hours: int, day_starts: int, noise: float, seed: int) -> tuple[np.ndarray, ...]:
    """(history, the next week without noise): hour t is in the local day that starts at UTC hour `day_starts`."""
    profiles = _profiles()
    t = np.arange(hours + 168) - day_starts
    clean = np.array([profiles[kinds[(h // 24) % 7]][h % 24] for h in t])
    noisy = clean + np.random.default_rng(seed).normal(0.0, noise, len(clean))
    return noisy[:hours], clean[hours:]


@pytest.mark.parametrize(
    ("kinds", "hours", "day_starts", "sizes"),
    [
        (WORKWEEK, 28 * 24, 0, [2, 5]),
        (WORKWEEK, 28 * 24 + 7, 16, [2, 5]),  # local midnight at 16:00 UTC, the history ends at 07:00
        ((0, 0, 0, 0, 2, 1, 1), 21 * 24 + 3, 5, [1, 2, 4]),  # Friday a kind of its own
        ((0,) * 7, 28 * 24, 0, [7]),  # no weekly pattern: one kind of day
        (tuple(range(7)), 28 * 24 + 11, 0, [1] * 7),  # every day different: MSTL's weekly season again
    ],
)
def test_days_alike_are_pooled_and_the_profile_is_next_weeks(
    kinds: tuple[int, ...], hours: int, day_starts: int, sizes: list[int]
) -> None:
    history, truth = _series(kinds, hours, day_starts, noise=0.03, seed=7)
    types = day_types(history)
    assert types is not None
    assert sorted(len(g) for g in types.groups) == sizes
    assert types.profile.mean() == pytest.approx(0.0, abs=1e-12)
    # The profile is next week's shape (so the days were cut where the kinds of day change): its error is the
    # noise of the pooled days, well below a single day's.
    error = np.abs(types.profile - (truth - truth.mean()))
    assert error.mean() < 0.03 / 2


def test_too_few_weeks_to_tell_noise_from_a_kind_of_day() -> None:
    history, _ = _series(WORKWEEK, 13 * 24, 0, noise=0.03, seed=1)
    assert day_types(history) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_day_type_forecast_is_nearer_than_mstls_from_the_same_fit(seed: int) -> None:
    history, truth = _series(WORKWEEK, 28 * 24, 0, noise=0.05, seed=seed)
    out = DayTypeMSTL((24, 168)).forecast(history + 5.0, 168, level=[95])
    assert set(out) == {"MSTL", NAME}
    for forecast in out.values():
        assert set(forecast) == {"mean", "lo-95", "hi-95"}
        assert np.all(forecast["lo-95"] <= forecast["mean"]) and np.all(forecast["mean"] <= forecast["hi-95"])
    plain, pooled = (float(np.mean(np.abs(out[k]["mean"] - (truth + 5.0)))) for k in ("MSTL", NAME))
    assert pooled < plain


def test_a_daily_season_alone_yields_no_day_types() -> None:
    history, _ = _series(WORKWEEK, 10 * 24, 0, noise=0.03, seed=1)
    assert set(DayTypeMSTL((24,)).forecast(history + 5.0, 24, level=[95])) == {"MSTL"}
