"""The answers of the Prometheus HTTP API as typed values: instant samples and range series.

Parsing fails closed: anything but the expected result type, a malformed element or the same series
twice raises UnknownStateError, so a check cannot read a broken answer as data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

from xzctl.errors import UnknownStateError

_S = TypeVar("_S", "Sample", "Series")


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector (or the single value of a scalar answer, with no labels)."""

    labels: dict[str, str]
    value: float
    timestamp: float

    @property
    def is_nan(self) -> bool:
        return math.isnan(self.value)


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a range query: its labels and (timestamp, value) points in time order."""

    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)


_MALFORMED = (KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError)


def parse_vector(data: dict[str, Any], who: str) -> list[Sample]:
    """The `data` of an instant query as samples; anything else than a vector or scalar is UnknownStateError."""
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "vector" and isinstance(result, list):
            samples = [Sample(_labels(r["metric"]), _value(r["value"][1]), _time(r["value"][0])) for r in result]
            return _unique(samples, who)
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return [Sample({}, _value(result[1]), _time(result[0]))]
    except _MALFORMED as exc:
        raise UnknownStateError(f"{who}: malformed vector ({type(exc).__name__})") from exc
    raise UnknownStateError(f"{who}: a {str(kind)[:40]!r} answer, not an instant vector")


def parse_matrix(data: dict[str, Any], who: str) -> list[Series]:
    """The `data` of a range query as series; anything else than a matrix is UnknownStateError."""
    kind, result = data.get("resultType"), data.get("result")
    if kind != "matrix" or not isinstance(result, list):
        raise UnknownStateError(f"{who}: a {str(kind)[:40]!r} answer, not a matrix")
    try:
        series = [Series(_labels(r["metric"]), [(_time(t), _value(v)) for t, v in r["values"]]) for r in result]
    except _MALFORMED as exc:
        raise UnknownStateError(f"{who}: malformed matrix ({type(exc).__name__})") from exc
    return _unique(series, who)


def _unique(items: list[_S], who: str) -> list[_S]:
    # Prometheus never answers one series twice: a duplicate means the answer is not what was asked.
    if len({frozenset(i.labels.items()) for i in items}) != len(items):
        raise UnknownStateError(f"{who}: the same series twice")
    return items


def _labels(metric: Any) -> dict[str, str]:
    if not isinstance(metric, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metric.items()):
        raise TypeError("labels are not a map of strings")
    return metric  # a fresh dict from the JSON decoder: no copy needed


def _value(raw: Any) -> float:
    # The API sends values as strings ("NaN", "+Inf" included); a bare number is accepted too.
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise TypeError(f"value {raw!r} is not a number")
    return float(raw)


def _time(raw: Any) -> float:
    value = _value(raw)
    if not math.isfinite(value):
        raise ValueError(f"timestamp {raw!r} is not finite")
    return value
