"""The rate window a live check may use: as long as the sample spacing needs, never longer than the live data.

The default window follows the scrape interval like Grafana's `$__rate_interval`: 5m, or four scrapes when
scrapes are sparser. Right after `sandbox up` a 5m window over 40 s of samples gives numbers that drift as it
fills (CPU 96 % falling to 57 %), and with `--history` it would reach across the seam into the backfill, whose
counters come from another simulator run (a reset) at a step of minutes: CPU read 95 % instead of 31 %. So the
window is clipped to the live samples and said so, or the check waits (unknown) until there is enough to judge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xzctl.errors import BadInputError, UnknownStateError

DEFAULT_WINDOW_SECONDS = 300.0
SCRAPES_PER_WINDOW = 4  # Grafana's $__rate_interval: a rate over four scrapes survives one missed scrape
MIN_SCRAPES = 3  # before three scrapes of every node there is no verdict (counters cannot show a change)


@dataclass(frozen=True)
class WindowPlan:
    window: str  # the PromQL range to query with
    note: str | None = None  # said to the operator when the window was clipped


def _human(seconds: float) -> str:
    return f"{seconds / 60:g} m" if seconds >= 60 else f"{seconds:g} s"


def default_window(scrape_interval: float) -> tuple[str, float]:
    """5m, or four scrape intervals when that is longer: (PromQL range, seconds)."""
    seconds = max(DEFAULT_WINDOW_SECONDS, SCRAPES_PER_WINDOW * scrape_interval)
    return ("5m", seconds) if seconds == DEFAULT_WINDOW_SECONDS else (f"{math.ceil(seconds)}s", math.ceil(seconds))


def plan_window(window: str, window_seconds: float, scrape_interval: float, data_age: float | None) -> WindowPlan:
    """`data_age`: seconds the live samples span (None: unknown, assumed enough)."""
    if window_seconds < 2 * scrape_interval:
        raise BadInputError(
            f"--window {window} is shorter than two scrape intervals ({scrape_interval:g} s each): "
            "rate() needs two samples in it",
            hint=f"use --window {math.ceil(2 * scrape_interval)}s or more",
        )
    if data_age is None or data_age >= window_seconds:
        return WindowPlan(window)
    said = f"warming up: {data_age:.0f} s of live samples, the {window} window needs {_human(window_seconds)}"
    needed = (MIN_SCRAPES - 1) * scrape_interval  # the span of MIN_SCRAPES samples
    if data_age < needed:
        raise UnknownStateError(
            f"{said}; no verdict before {MIN_SCRAPES} scrapes ({needed:g} s of samples)",
            hint=f"wait {math.ceil(needed - data_age)} s (`xzctl sandbox up` waits for this)",
        )
    clipped = math.floor(data_age)
    return WindowPlan(
        f"{clipped}s", f"{said}: judged over {clipped}s (the full window in {math.ceil(window_seconds - data_age)} s)"
    )
