"""MSTL whose weekly season is learned per day type: the days of the week that behave alike share one profile.

MSTL learns the weekly season of each hour of the week from the few weeks held (four in 28 days), so a quarter
of the noise of each of them stays in the forecast. Device traffic has fewer kinds of day than seven: the working
days look alike, the weekend days look alike. The days of the week are grouped when their mean daily profiles
(after MSTL's trend) differ by no more than the noise between weeks explains (an F test at 99 %, merging the most
alike first), and each group's profile is the mean of all its days: twenty working days instead of four Mondays.
Days that differ stay apart, so a week of seven different days is MSTL's weekly season again.

Where a day starts is found, not assumed: the fleet's local midnight is not UTC's, so each of the 24 hours is tried
as the day's first and the one whose groups leave the least noise in the profile is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Array = npt.NDArray[np.float64]
    Days = npt.NDArray[np.integer[Any]]

DAY = 24
WEEK = 7 * DAY
NAME = "MSTL day types"  # the candidate's name beside statsforecast's "MSTL"
ALIKE = 0.99  # the F test's level: days are apart only when their difference is clearly more than noise
MIN_DAYS_EACH = 2  # the noise between weeks needs two of each day of the week


@dataclass(frozen=True)
class DayTypes:
    """The days of the week grouped, for day blocks that end `offset` hours before the series' end."""

    offset: int
    groups: tuple[tuple[int, ...], ...]  # day of the cycle (0: the day block the forecast starts in) per group
    noise: float  # mean variance left in the pooled profile: what the grouping is judged by
    profile: Array  # WEEK values from the first block after the series' end, centred on 0


def _group(blocks: Array, days: Days, threshold: float) -> tuple[list[list[int]], Array, Array]:
    """Merge the days of the cycle whose mean profiles are alike; (groups, profile per day of cycle, noise/hour)."""
    import numpy as np

    sums = np.stack([blocks[days == d].sum(axis=0) for d in range(7)])
    counts = np.bincount(days, minlength=7).astype(float)
    means = sums / counts[:, None]
    dof = len(blocks) - 7
    noise = np.maximum(((blocks - means[days]) ** 2).sum(axis=0) / dof, 1e-12)
    groups = [[d] for d in range(7)]
    while len(groups) > 1:
        size = np.array([counts[g].sum() for g in groups])
        mean = np.stack([sums[g].sum(axis=0) for g in groups]) / size[:, None]
        # Each pair's mean squared difference per hour in units of its noise: F-distributed when they are alike.
        spread = (mean[:, None, :] - mean[None, :, :]) ** 2 / noise
        stat = spread.mean(axis=2) / (1 / size[:, None] + 1 / size[None, :])
        stat[np.tril_indices(len(groups))] = np.inf
        a, b = np.unravel_index(np.argmin(stat), stat.shape)
        if stat[a, b] > threshold:
            break
        groups[a] += groups.pop(b)
    pooled = np.empty((7, DAY))
    size = np.empty(7)
    for g in groups:
        pooled[g] = sums[g].sum(axis=0) / counts[g].sum()
        size[g] = counts[g].sum()
    return groups, pooled, noise[None, :] / size[:, None]


def day_types(detrended: Array) -> DayTypes | None:
    """The grouping of the days of the week (tried from each hour of the day as its start); None on too little."""
    import numpy as np
    from scipy.stats import f

    n = len(detrended)
    best: DayTypes | None = None
    for offset in range(DAY):
        count = (n - offset) // DAY
        if count < 7 * MIN_DAYS_EACH:
            continue
        end = n - offset
        blocks = detrended[end - count * DAY : end].reshape(count, DAY)
        days = (np.arange(count) - count) % 7  # the block just before `end` is day 6 of the cycle
        threshold = float(f.ppf(ALIKE, DAY, count - 7))
        groups, pooled, left = _group(blocks, days, threshold)
        noise = float(left.mean())
        if best is None or noise < best.noise:
            week = np.roll(pooled.reshape(-1), -offset)  # the forecast's first hour is `offset` into day 0
            best = DayTypes(offset, tuple(tuple(sorted(g)) for g in groups), noise, week - week.mean())
    return best


class DayTypeMSTL:
    """statsforecast's MSTL and, from the same fit, its day-type variant: `forecast` returns both by name."""

    def __init__(self, seasons: tuple[int, ...]) -> None:
        self.seasons = seasons

    def forecast(self, y: Array, h: int, level: list[int]) -> dict[str, dict[str, Array]]:
        import numpy as np
        from statsforecast.models import MSTL

        fitted = MSTL(season_length=list(self.seasons)).fit(y)
        plain: dict[str, Array] = fitted.predict(h=h, level=level)
        out = {"MSTL": plain}
        types = day_types(y - np.asarray(fitted.model_["trend"], dtype=float)) if WEEK in self.seasons else None
        if types is not None:
            # The deseasonalised level is MSTL's own forecast; only the season it adds is the day types'.
            level_only: dict[str, Any] = fitted.trend_forecaster.predict(h=h, level=level)
            season = np.resize(types.profile, h)
            out[NAME] = {k: np.asarray(v, dtype=float) + season for k, v in level_only.items()}
        return out
