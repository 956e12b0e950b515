"""Ask per region: each region's answer holds only its own edge nodes, regions are asked a few at a time, and a region
that does not answer is reported as such while the others' answers stand.

Through a global view (Thanos Query over a Prometheus per region) a query narrowed to one region reaches only that
region's Prometheus, so one slow or lost region costs its own answer, not the fleet's. Against a single Prometheus
the split still bounds each answer by a region's size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from xzctl.errors import UnknownStateError

T = TypeVar("T")
# Regions asked at once; each region's round sends its own queries in parallel too (PrometheusClient.query_many).
REGION_PARALLEL = 4


@dataclass
class ByRegion(Generic[T]):
    """What each region answered, and why the others did not."""

    answers: dict[str, T] = field(default_factory=dict)
    failed: dict[str, UnknownStateError] = field(default_factory=dict)  # region -> why it is unknown


def per_region(regions: Sequence[str], ask: Callable[[str], T], *, parallel: int = REGION_PARALLEL) -> ByRegion[T]:
    """`ask(region)` for every region, `parallel` at a time. A region whose answer cannot be trusted
    (UnknownStateError: unreachable, timed out, a broken answer) lands in `failed`; any other error (a query
    Prometheus refuses as malformed is a bug, not a region's state) is raised."""
    out: ByRegion[T] = ByRegion()
    if not regions:
        return out
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(regions)))) as pool:
        futures = {region: pool.submit(ask, region) for region in regions}
    for region, future in futures.items():
        try:
            out.answers[region] = future.result()
        except UnknownStateError as exc:
            out.failed[region] = exc
    return out
