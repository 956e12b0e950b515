"""The rate window a live check may use: never longer than the data, never shorter than two scrapes.

Right after `sandbox up` without history, a 5m window over 40 s of samples gives numbers that drift as it
fills (CPU 96 % falling to 57 %), and counters look frozen before three scrapes exist. So the window is
clipped to the data and said so, or the check waits (unknown) until there is enough to judge at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xzctl.errors import BadInputError, UnknownStateError


@dataclass(frozen=True)
class WindowPlan:
    window: str  # the PromQL range to query with
    note: str | None = None  # said to the operator when the window was clipped


def _human(seconds: float) -> str:
    return f"{seconds / 60:g} m" if seconds >= 60 else f"{seconds:g} s"


def plan_window(window: str, window_seconds: float, scrape_interval: float, data_age: float | None) -> WindowPlan:
    """`data_age`: seconds of samples Prometheus holds (None: unknown, assumed enough)."""
    if window_seconds < 2 * scrape_interval:
        raise BadInputError(
            f"--window {window} is shorter than two scrape intervals ({scrape_interval:g} s each): "
            "rate() needs two samples in it",
            hint=f"use --window {math.ceil(2 * scrape_interval)}s or more",
        )
    if data_age is None or data_age >= window_seconds:
        return WindowPlan(window)
    said = f"warming up: {data_age:.0f} s of history, the {window} window needs {_human(window_seconds)}"
    if data_age < 3 * scrape_interval:
        raise UnknownStateError(
            f"{said}; no verdict before {3 * scrape_interval:g} s of data",
            hint="wait, or use `xzctl sandbox up --history 1h`",
        )
    clipped = math.floor(data_age)
    return WindowPlan(f"{clipped}s", f"{said}: judged over {clipped}s (use `xzctl sandbox up --history 1h`)")
