"""Deterministic metric history of a simulated fleet, as OpenMetrics for `promtool tsdb create-blocks-from`.

The history runs the same model as the live simulator from `end - span` to `end` with a fixed step,
and labels every sample with the target labels a live scrape gets (job, instance, region, node), so
backfilled and scraped samples form one series. OpenMetrics wants each metric family in one block,
so every family is written to its own spool file during the single pass and joined at the end.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xzctl.errors import BadInputError
from xzctl.metrics import contract as c
from xzctl.simulator.exposition import node_families
from xzctl.simulator.model import FleetModel
from xzctl.spec.models import Fleet

MIN_STEP_SECONDS = 60
# About 400 MB of OpenMetrics text and a minute of promtool; beyond this budget the step grows instead.
SAMPLE_BUDGET = 2_000_000
MAX_SPAN_SECONDS = 31 * 86400


@dataclass(frozen=True)
class HistoryStats:
    start: float
    end: float
    step: int
    samples: int
    series: int


def history_step(fleet: Fleet, span_seconds: float, series_per_node: int = 200) -> int:
    """The step (a whole minute, >= 60 s) that keeps the history under the sample budget."""
    series = series_per_node * len(fleet.edge_nodes())
    raw = series * span_seconds / SAMPLE_BUDGET
    return max(MIN_STEP_SECONDS, math.ceil(raw / 60.0) * 60)


def target_labels(region: str, node: str) -> str:
    """The labels Prometheus attaches to a live scrape of the node (see the sandbox scrape config)."""
    return f'job="{c.EDGE_JOB}",instance="{node}",region="{region}",node="{node}"'


def write_openmetrics_history(
    fleet: Fleet, out: Path, *, seed: int, end: float, span_seconds: float, step: int | None = None
) -> HistoryStats:
    """Write `span_seconds` of history ending at `end` to `out`; the same arguments give the same file."""
    if not 0 < span_seconds <= MAX_SPAN_SECONDS:
        raise BadInputError(f"history must be between 1 s and {MAX_SPAN_SECONDS // 86400} days")
    step = step or history_step(fleet, span_seconds)
    end = float(int(end))
    start = end - int(span_seconds // step) * step
    model = FleetModel(fleet, seed=seed, start=start)
    spool = Path(tempfile.mkdtemp(prefix="xzctl-history-", dir=out.parent))
    files: dict[str, IO[str]] = {}
    headers: dict[str, str] = {}
    samples = 0
    series = 0
    bases = {n.id: target_labels(n.region, n.id) for n in model.nodes.values()}
    try:
        t = start
        while t <= end:
            series = 0  # the count at the last step is the fleet's series count
            model.process_arrivals(t)
            for node in model.nodes.values():
                model.advance_node(node, t, max_step=step)
                for family in node_families(model, node, bases[node.id]):
                    name = family.metric.name
                    if name not in files:
                        files[name] = (spool / f"{len(files):03d}.om").open("w", encoding="utf-8")
                        headers[name] = family.header(openmetrics=True)
                    suffix = f" {int(t)}\n"
                    files[name].write(suffix.join(family.samples) + suffix if family.samples else "")
                    samples += len(family.samples)
                    series += len(family.samples)
            t += step
        for handle in files.values():
            handle.close()
        with out.open("w", encoding="utf-8") as dest:
            for name, handle in files.items():
                dest.write(headers[name])
                with Path(handle.name).open(encoding="utf-8") as src:
                    shutil.copyfileobj(src, dest)
            dest.write("# EOF\n")
    finally:
        for handle in files.values():
            handle.close()
        shutil.rmtree(spool, ignore_errors=True)
    return HistoryStats(start=start, end=end, step=step, samples=samples, series=series)
