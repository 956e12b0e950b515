"""The forecast's history, hour by hour, and what is wrong with it: gaps, gauge resets, a step change.

Nothing is hidden: every repair is reported. A gap (hours without a sample) is filled from the same hour a week
(or a day) earlier, scaled to the level around the gap; a gauge reset (the value falls to a fraction of its
neighbours for up to three hours and comes back: an exporter restart, not the devices) is replaced the same way.
A step change (the level a week after differs from the week before by a quarter or more, and stays) makes the model
fit on the hours after it when they are enough, otherwise the hours before it are scaled to the new level.
History that starts late (the sandbox's `--history 7d` asked for 14 days) is cut to what is held.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from xzctl.errors import UnknownStateError

HOUR = 3600
DAY = 24
WEEK = 7 * DAY
MAX_MISSING_SHARE = 0.1  # more hours missing inside the history than this and the history says too little
RESET_SHARE = 0.3  # below this share of both neighbours, an hour is a gauge reset (the devices did not vanish)
RESET_MAX_HOURS = 3  # a longer dip is the devices' own, left as it is
STEP_MIN = math.log(1.25)  # a level change of a quarter or more, held for a week, is a step
MIN_AFTER_STEP = 2 * WEEK  # fit only on the hours after a step when there are this many of them


def when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:00")


@dataclass
class History:
    """One region's hourly values from `start` and what was repaired on the way."""

    start: float  # unix seconds of values[0]
    values: list[float]
    gaps: list[tuple[float, int]] = field(default_factory=list)  # (first missing hour, hours missing)
    resets: list[float] = field(default_factory=list)  # hours replaced as gauge resets
    step: tuple[float, float] | None = None  # (first hour at the new level, factor new/old)
    fit_from: int = 0  # index of the first value the model fits on
    scaled_before_step: bool = False

    @property
    def fit_values(self) -> list[float]:
        return self.values[self.fit_from :]

    def notes(self, region: str) -> list[str]:
        out = []
        if self.gaps:
            total = sum(n for _, n in self.gaps)
            where = ", ".join(f"{n} h from {when(t)}" for t, n in self.gaps[:3])
            more = f" and {len(self.gaps) - 3} more" if len(self.gaps) > 3 else ""
            out.append(f"{region}: {total} hours of history missing ({where}{more} UTC), filled from a week before")
        if self.resets:
            where = ", ".join(when(t) for t in self.resets[:3])
            out.append(f"{region}: {len(self.resets)} hour(s) look like a gauge reset ({where} UTC), replaced")
        if self.step is not None:
            t, factor = self.step
            how = (
                "history before it scaled to the new level" if self.scaled_before_step else "fit on the hours after it"
            )
            out.append(f"{region}: the level changed x{factor:.2f} at {when(t)} UTC (a step): {how}")
        return out


def _same_hour_before(values: Sequence[float | None], i: int) -> float | None:
    for lag in (WEEK, DAY, 2 * WEEK, 2 * DAY):
        if i - lag >= 0 and values[i - lag] is not None:
            return values[i - lag]
    return None


def _fill(values: list[float | None], start: float) -> tuple[list[float], list[tuple[float, int]]]:
    """Fill the runs of missing hours from the same hour earlier, scaled to the hour before the run."""
    gaps: list[tuple[float, int]] = []
    out: list[float] = []
    i = 0
    while i < len(values):
        if values[i] is not None:
            out.append(values[i])  # type: ignore[arg-type]
            i += 1
            continue
        run = next((j for j in range(i, len(values)) if values[j] is not None), len(values)) - i
        gaps.append((start + i * HOUR, run))
        before = out[-1] if out else next(v for v in values if v is not None)
        ref_before = _same_hour_before(out, len(out) - 1) if out else None
        scale = before / ref_before if ref_before else 1.0
        for j in range(i, i + run):
            same = _same_hour_before(out, j)
            out.append(before if same is None else same * scale)
        i += run
    return out, gaps


def _resets(values: list[float], start: float) -> list[float]:
    """Replace the short dips to a fraction of both neighbours (gauge resets) in place; their hours."""
    found = []
    i = 1
    while i < len(values) - 1:
        left = values[i - 1]
        if left > 0 and values[i] < RESET_SHARE * left:
            end = next(
                (j for j in range(i, min(i + RESET_MAX_HOURS + 1, len(values))) if values[j] >= 0.7 * left), None
            )
            if end is not None:
                for j in range(i, end):
                    same = _same_hour_before(values, j)
                    values[j] = same if same is not None else left
                    found.append(start + j * HOUR)
                i = end
                continue
        i += 1
    return found


def _step(values: Sequence[float]) -> tuple[int, float] | None:
    """The hour a lasting level change starts and its factor, from week-over-week log ratios; None if none."""
    n = len(values)
    if n < 2 * WEEK + DAY:
        return None  # a week-over-week ratio needs two weeks; shorter history cannot tell a step from a weekend
    logs = [math.log1p(max(v, 0.0)) for v in values]
    ratio = [logs[t] - logs[t - WEEK] for t in range(WEEK, n)]
    # Mean ratio over a week from each hour (prefix sums keep it linear): a step shows as a week at its factor.
    prefix = [0.0]
    for r in ratio:
        prefix.append(prefix[-1] + r)
    best, best_at = 0.0, -1
    for s in range(len(ratio) - DAY + 1):
        end = min(s + WEEK, len(ratio))
        mean = (prefix[end] - prefix[s]) / (end - s)
        if abs(mean) > abs(best):
            best, best_at = mean, s
    if abs(best) < STEP_MIN:
        return None
    after = ratio[best_at + WEEK : best_at + 2 * WEEK]
    if after and abs(statistics.fmean(after)) > STEP_MIN / 2:
        return None  # the level went back: an event, not a step
    # The hour within the window where the change happens: the first whose ratio is past half the factor.
    first = next(t for t in range(best_at, min(best_at + WEEK, len(ratio))) if abs(ratio[t]) > abs(best) / 2)
    return first + WEEK, math.exp(best)


def clean(points: Sequence[tuple[float, float]], start: float, hours: int, *, min_hours: int) -> History:
    """One region's hourly history from `start`, repaired and reported; UnknownStateError when it says too little."""
    by_hour: dict[int, float] = {}
    for t, v in points:
        h = round((t - start) / HOUR)
        if 0 <= h < hours and math.isfinite(v):
            by_hour[h] = max(v, 0.0)
    if not by_hour:
        raise UnknownStateError("no history in the range asked")
    first, last = min(by_hour), max(by_hour)
    raw: list[float | None] = [by_hour.get(h) for h in range(first, last + 1)]
    missing = sum(v is None for v in raw)
    if missing > MAX_MISSING_SHARE * len(raw):
        raise UnknownStateError(f"{missing} of {len(raw)} hours of history are missing (more than a tenth)")
    begin = start + first * HOUR
    values, gaps = _fill(raw, begin)
    history = History(start=begin, values=values, gaps=gaps, resets=_resets(values, begin))
    if (step := _step(values)) is not None:
        at, factor = step
        history.step = (begin + at * HOUR, factor)
        # A region onboarding (from next to nothing) has no level to scale: its history starts at the step.
        if len(values) - at >= max(MIN_AFTER_STEP, min_hours) or not 0.25 <= factor <= 4:
            history.fit_from = at
        else:
            history.values = [v * factor for v in values[:at]] + values[at:]
            history.scaled_before_step = True
    return history


UNUSUAL_DAY = math.log(1.3)  # a day off by this much from the same weekday of the other weeks is an event


def unusual_days(values: Sequence[float], start: float) -> tuple[list[float], list[tuple[float, float]]]:
    """Days (counted back from the last hour) far from the same weekday of the other weeks, scaled to it.

    An unannounced holiday in the history would otherwise teach the weekly season a dip that does not come back.
    Returns the values and (first hour, factor) per unusual day; nothing on less than three weeks (the median of
    a weekday needs three of them to outvote one unusual day).
    """
    out = list(values)
    found: list[tuple[float, float]] = []
    n = len(values)
    days = n // DAY
    if days < 21:
        return out, found
    first = n - days * DAY
    sums = [sum(values[first + d * DAY : first + (d + 1) * DAY]) for d in range(days)]
    for d in range(days):
        ref = statistics.median(sums[d % 7 :: 7])
        if ref <= 0 or sums[d] <= 0:
            continue
        factor = sums[d] / ref
        if abs(math.log(factor)) > UNUSUAL_DAY:
            begin = first + d * DAY
            out[begin : begin + DAY] = [v / factor for v in values[begin : begin + DAY]]
            found.append((start + begin * HOUR, factor))
    return out, found
