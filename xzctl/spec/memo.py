"""Figures derived from a frozen spec object alone, computed once per object.

A loaded Fleet is frozen, so what is derived from it alone never changes while it lives; `model_copy` makes a new
object, which gets its own figure. The key is identity (a spec holds dicts, so it is not hashable), and the last object
is held so that its id cannot be reused by another. One entry: callers ask about one fleet at a time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def per_spec(derive: Callable[[T], R]) -> Callable[[T], R]:
    last: list[tuple[T, R]] = []

    @functools.wraps(derive)
    def derived(spec: T) -> R:
        if last and last[0][0] is spec:
            return last[0][1]
        value = derive(spec)
        last[:] = [(spec, value)]
        return value

    return derived
