"""Which model forecasts a series, chosen by a backtest the operator can read, with a band whose coverage is measured.

Candidates (Nixtla statsforecast): the seasonal naive (the same hour a week earlier; a day earlier when the history
is shorter than a week and the backtest), AutoETS (daily season), MSTL (daily and weekly seasons), MSTL with its
weekly season learned per day type (xzctl.checks.forecast_daytypes; from the same fit) and AutoTheta.
Rolling origin: the history is cut at three points a day apart (half a day on short history), each candidate
forecasts the backtest horizon (the horizon asked, or less when the history is short, which is said) from the hours
before the cut, and its MAPE is the mean over the cuts. The candidate with the lowest MAPE is used only when it beats
the seasonal naive; otherwise the seasonal naive is used, and the forecast says so.

The band: the chosen model's 95 % interval, its half-widths scaled so that 95 % of the backtest's hours fall inside
(a conformal calibration: the model's own band is often far too wide or too narrow). The coverage reported is
measured out of sample: each cut's hours against the scale learned on the other cuts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from xzctl.checks.forecast_daytypes import NAME as DAY_TYPES
from xzctl.checks.forecast_daytypes import DayTypeMSTL
from xzctl.errors import UnknownStateError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Array = npt.NDArray[np.float64]

DAY = 24
WEEK = 7 * DAY
LEVEL = 95
PEAK_LEVEL = 99  # the upper band, which sizes the schedule and the nodes
WINDOWS = 3  # cut points of the rolling-origin backtest
MIN_TRAIN = 2 * DAY  # two daily seasons before the earliest cut
MIN_BACKTEST = 12  # hours ahead the backtest judges at the least
MIN_HISTORY = MIN_TRAIN + (WINDOWS - 1) * 12 + MIN_BACKTEST  # 84 h: three days and a half
NAIVE = "seasonal naive"
# Candidates that come out of another's fit, and that candidate.
SHARED_FIT = {DAY_TYPES: "MSTL"}
# The mean of two candidates is a candidate of its own: their errors partly cancel (no fit of its own in the backtest).
COMBINED = {"MSTL+AutoTheta": ("MSTL", "AutoTheta")}


@dataclass(frozen=True)
class Plan:
    """What the history allows: the naive's lag, the backtest's horizon and cut points, MSTL's seasons."""

    lag: int
    backtest_hours: int
    cuts: tuple[int, ...]
    seasons: tuple[int, ...]
    notes: tuple[str, ...] = ()


def _plan(n: int, horizon: int) -> Plan:
    step = DAY if n >= WEEK else 12
    for lag in (WEEK, DAY):  # the same hour a week earlier when the history allows it and a backtest besides
        backtest = min(horizon, n - max(lag, MIN_TRAIN) - (WINDOWS - 1) * step)
        if backtest >= MIN_BACKTEST:
            break
    earliest = n - backtest - (WINDOWS - 1) * step
    seasons = (DAY, WEEK) if earliest >= 2 * WEEK else (DAY,)  # MSTL needs two weeks to learn the weekly one
    cuts = tuple(n - backtest - k * step for k in range(WINDOWS - 1, -1, -1))
    return Plan(lag=lag, backtest_hours=backtest, cuts=cuts, seasons=seasons)


def _days_until(horizon: int, enough: Callable[[Plan], bool]) -> int:
    """The fewest days of history whose plan is `enough`."""
    return next((d for d in range(MIN_HISTORY // DAY + 1, 60) if enough(_plan(d * DAY, horizon))), 60)


def plan(n: int, horizon: int) -> Plan:
    """The backtest that `n` hours of history allow for `horizon`; UnknownStateError naming --days if none."""
    if n < MIN_HISTORY:
        raise UnknownStateError(
            f"{n} hours of history; the forecast needs at least {MIN_HISTORY} to fit and backtest "
            f"(--days {math.ceil(MIN_HISTORY / DAY)} with that much history held)"
        )
    p = _plan(n, horizon)
    notes = []
    if p.backtest_hours < horizon:
        days = _days_until(horizon, lambda q: q.backtest_hours == horizon)
        notes.append(
            f"backtest judged {p.backtest_hours} h ahead, not {horizon}: --days {days} judges the whole horizon"
        )
    if WEEK not in p.seasons:
        days = _days_until(horizon, lambda q: WEEK in q.seasons)
        notes.append(f"the weekly pattern is not modelled on {n / DAY:g} days of history (--days {days} is enough)")
    return replace(p, notes=tuple(notes))


def _candidates(p: Plan) -> tuple[dict[str, Any], list[str]]:
    """The models to fit, and the names of the candidates they and the combinations yield."""
    from statsforecast.models import AutoETS, AutoTheta, SeasonalNaive

    models: dict[str, Any] = {
        NAIVE: SeasonalNaive(season_length=p.lag),
        # Additive season (on the log scale: multiplicative in devices); no damped trend, which costs a third of
        # the search and has not won on hourly device counts.
        "AutoETS": AutoETS(season_length=DAY, model="ZZA", damped=False),
        "MSTL": DayTypeMSTL(p.seasons),
        "AutoTheta": AutoTheta(season_length=p.seasons[-1]),
    }
    names = [*models, *COMBINED]
    if WEEK in p.seasons:  # day types are told apart by the noise between weeks: two of each at every cut
        names.insert(names.index("MSTL") + 1, DAY_TYPES)
    return models, names


def _predict(name: str, model: Any, y: Array, h: int) -> dict[str, tuple[Array, Array, Array]]:
    """Mean, lower and upper of each candidate `model` yields fitted on `y` (MSTL yields its day-type variant
    besides); the models other than the naive work on log(1 + y)."""
    import numpy as np

    # Devices are a population times the hour's activity: on a log scale the daily and weekly swings add up,
    # which is what MSTL's and Theta's decompositions assume; the band comes back asymmetric, as counts are.
    logged = name != NAIVE
    out = model.forecast(y=np.log1p(y) if logged else y, h=h, level=[LEVEL])
    yielded = out if isinstance(model, DayTypeMSTL) else {name: out}

    def back(values: Any) -> Array:
        return np.asarray(np.expm1(values) if logged else values, dtype=float)

    return {n: (back(o["mean"]), back(o[f"lo-{LEVEL}"]), back(o[f"hi-{LEVEL}"])) for n, o in yielded.items()}


def _forecast(name: str, models: dict[str, Any], y: Array, h: int) -> tuple[Array, Array, Array]:
    """The forecast of candidate `name`: its model's, or the mean of a combination's parts."""
    import numpy as np

    if name in COMBINED:
        parts = [_forecast(part, models, y, h) for part in COMBINED[name]]
        mean, lower, upper = (np.mean([p[i] for p in parts], axis=0) for i in range(3))
        return mean, lower, upper
    fitter = SHARED_FIT.get(name, name)
    return _predict(fitter, models[fitter], y, h)[name]


def mape(actual: Iterable[float], predicted: Iterable[float]) -> float:
    """Mean absolute percentage error over the points whose actual value is not 0."""
    pairs = [(a, p) for a, p in zip(actual, predicted, strict=True) if a]
    if not pairs:
        return math.nan
    return sum(abs(a - p) / abs(a) for a, p in pairs) / len(pairs)


@dataclass(frozen=True)
class Window:
    """One cut of the backtest: what happened and what a candidate said."""

    actual: Array
    mean: Array
    lower: Array
    upper: Array

    def needed_scale(self) -> Array:
        """Per hour, the factor on the band's half-width that would just have covered the actual value."""
        import numpy as np

        above = self.actual >= self.mean
        half = np.where(above, self.upper - self.mean, self.mean - self.lower)
        return np.abs(self.actual - self.mean) / np.maximum(half, 1e-9)


def _peak_scale(w: Window) -> float:
    """The least scale of the upper half-width whose band's peak reaches the window's true peak."""
    import numpy as np

    half = np.maximum(w.upper - w.mean, 1e-9)
    return max(0.0, float(np.min((w.actual.max() - w.mean) / half)))


def calibrate(windows: Sequence[Window]) -> tuple[float, float, float]:
    """(scale of the lower half-width, of the upper one, coverage measured leaving each cut out).

    Both cover 95 % of the backtest's hours; the upper one also reaches each cut's true peak, since the schedule
    and the node count are sized from the upper band's peak.
    """
    import numpy as np

    def scales(chosen: Sequence[Window]) -> tuple[float, float]:
        needed = np.concatenate([w.needed_scale() for w in chosen])
        above = np.concatenate([w.needed_scale()[w.actual >= w.mean] for w in chosen])
        per_hour = float(np.quantile(needed, LEVEL / 100, method="higher"))
        # A week holds several near-equal peaks: each under the band with 99 % keeps the highest under it too.
        peak = float(np.quantile(above, PEAK_LEVEL / 100, method="higher")) if above.size else per_hour
        return per_hour, max(per_hour, peak, *(_peak_scale(w) for w in chosen))

    covered = []
    for i, w in enumerate(windows):
        lo, up = scales([o for j, o in enumerate(windows) if j != i])
        inside = (w.actual >= w.mean - lo * (w.mean - w.lower)) & (w.actual <= w.mean + up * (w.upper - w.mean))
        covered.append(float(np.mean(inside)))
    return *scales(windows), float(np.mean(covered))


@dataclass(frozen=True)
class SeriesForecast:
    """One hourly series forecast `len(values)` hours ahead by the model the backtest chose, with its band."""

    values: list[float]
    lower: list[float]
    upper: list[float]
    model: str  # the candidate used: the seasonal naive unless another beat it in the backtest
    mape: float  # backtest MAPE of the model used
    naive_mape: float  # backtest MAPE of the seasonal naive, on the same cuts
    coverage: float  # share of the backtest's hours inside the calibrated band, each cut judged out of sample
    backtest_hours: int
    candidates: dict[str, float | None] = field(default_factory=dict)  # backtest MAPE; None: the fit failed
    notes: list[str] = field(default_factory=list)


def _backtest(
    y: Array, p: Plan, models: dict[str, Any], names: list[str]
) -> tuple[dict[str, list[Window]], dict[str, str]]:
    windows: dict[str, list[Window]] = {name: [] for name in names}
    failed: dict[str, str] = {}
    for cut in p.cuts:
        actual = y[cut : cut + p.backtest_hours]
        for name, model in models.items():
            if name in failed:
                continue
            try:
                predicted = _predict(name, model, y[:cut], p.backtest_hours)
            except Exception as exc:  # a candidate that cannot fit this history is out, and the forecast says so
                if name == NAIVE:
                    raise
                failed[name] = f"{type(exc).__name__}: {exc}"[:120]
                continue
            for yielded, (mean, lo, hi) in predicted.items():
                windows[yielded].append(Window(actual, mean, lo, hi))
    for shared, fitter in SHARED_FIT.items():
        if shared in names and fitter in failed:
            failed[shared] = f"{fitter} failed"
    for name, parts in COMBINED.items():
        if any(part in failed for part in parts):
            failed[name] = f"{' or '.join(parts)} failed"
            continue
        for i in range(len(p.cuts)):
            members = [windows[part][i] for part in parts]
            windows[name].append(Window(actual=members[0].actual, **_average(members)))
    return {n: w for n, w in windows.items() if n not in failed}, failed


def _average(members: Sequence[Window]) -> dict[str, Array]:
    import numpy as np

    return {k: np.mean([getattr(m, k) for m in members], axis=0) for k in ("mean", "lower", "upper")}


def forecast_series(history: Sequence[float], horizon: int, *, judged_at: int | None = None) -> SeriesForecast:
    """Choose a model by rolling-origin backtest `judged_at` hours ahead (default: the horizon), forecast `horizon`
    hours with it, calibrate its band."""
    import numpy as np

    y = np.asarray(history, dtype=float)
    p = plan(len(y), judged_at or horizon)
    models, names = _candidates(p)
    windows, failed = _backtest(y, p, models, names)
    scores = {n: float(np.mean([mape(w.actual, w.mean) for w in ws])) for n, ws in windows.items()}
    notes = list(p.notes) + [f"{name} could not be fitted ({why})" for name, why in failed.items()]
    ranked = sorted((s, n) for n, s in scores.items() if n != NAIVE and math.isfinite(s))
    chosen = NAIVE
    if ranked and ranked[0][0] < scores[NAIVE]:
        chosen = ranked[0][1]
    elif ranked:
        best, name = ranked[0]
        notes.append(f"no model beat the seasonal naive in the backtest ({name} {best:.1%} vs {scores[NAIVE]:.1%})")
    low_scale, up_scale, coverage = calibrate(windows[chosen])
    mean, lo, hi = _forecast(chosen, models, y, horizon)
    upper = mean + up_scale * (hi - mean)
    lower = mean - low_scale * (mean - lo)
    return SeriesForecast(
        values=[max(0.0, float(v)) for v in mean],
        lower=[max(0.0, float(v)) for v in lower],
        upper=[max(0.0, float(v)) for v in upper],
        model=chosen,
        mape=scores[chosen],
        naive_mape=scores[NAIVE],
        coverage=coverage,
        backtest_hours=p.backtest_hours,
        candidates={n: scores.get(n) for n in names},
        notes=notes,
    )
