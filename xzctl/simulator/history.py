"""Deterministic metric history of a simulated fleet, as OpenMetrics for `promtool tsdb create-blocks-from`.

The history runs the same model as the live simulator from `end - span` to `end` with a fixed step,
one region at a time (each region's Prometheus holds only its own), and labels every sample with the target labels a live scrape gets (job, instance, region, node), so
backfilled and scraped samples form one series. OpenMetrics wants each metric family in one block,
so every family is written to its own spool file during the single pass and joined at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xzctl.errors import BadInputError
from xzctl.metrics import contract as c
from xzctl.metrics.history import MAX_HISTORY_DAYS
from xzctl.simulator.exposition import node_families
from xzctl.simulator.model import FleetModel
from xzctl.spec.models import Fleet

MIN_STEP_SECONDS = 60
# The forecast's hourly rates need two samples an hour: the step never grows past this, whatever the size.
MAX_STEP_SECONDS = 1800
# Per region (about 200 MB of OpenMetrics text and half a minute of promtool); beyond it the step grows, up to
# MAX_STEP_SECONDS. A region's size, not the fleet's, sets the step: more regions mean more regions in parallel.
REGION_SAMPLE_BUDGET = 1_000_000
MAX_SPAN_SECONDS = MAX_HISTORY_DAYS * 86400


@dataclass(frozen=True)
class HistoryStats:
    start: float
    end: float
    step: int
    samples: int
    series: int


# A node's series (simulator exposition: 302 with the contract's histogram buckets, 172 before they were refined).
SERIES_PER_NODE = 300


def history_step(nodes: int, span_seconds: float, series_per_node: int = SERIES_PER_NODE) -> int:
    """The step of a region of `nodes` edge nodes: a whole minute, 60 s to MAX_STEP_SECONDS, within the budget."""
    raw = series_per_node * nodes * span_seconds / REGION_SAMPLE_BUDGET
    return min(MAX_STEP_SECONDS, max(MIN_STEP_SECONDS, math.ceil(raw / 60.0) * 60))


def coarsest_step(fleet: Fleet, span_seconds: float, region: str | None = None) -> int:
    """The widest spacing of backfilled samples: the step of `region`'s history, else of the largest region's."""
    sizes: dict[str, int] = {}
    for node in fleet.edge_nodes():
        if region is None or node.region == region:
            sizes[node.region] = sizes.get(node.region, 0) + 1
    return max((history_step(n, span_seconds) for n in sizes.values()), default=MIN_STEP_SECONDS)


def target_labels(region: str, node: str) -> str:
    """The labels Prometheus attaches to a live scrape of the node (see the sandbox scrape config)."""
    return f'job="{c.EDGE_JOB}",instance="{node}",region="{region}",node="{node}"'


def write_openmetrics_history(
    fleet: Fleet,
    out: Path,
    *,
    seed: int,
    end: float,
    span_seconds: float,
    step: int | None = None,
    region: str | None = None,
) -> HistoryStats:
    """Write `span_seconds` of history ending at `end` to `out` (only `region`'s nodes when given, the same
    samples as in the whole fleet's history); the same arguments give the same file."""
    if not 0 < span_seconds <= MAX_SPAN_SECONDS:
        raise BadInputError(f"history must be between 1 s and {MAX_SPAN_SECONDS // 86400} days")
    end = float(int(end))
    ids = [n.id for n in fleet.edge_nodes() if region is None or n.region == region]
    if not ids:
        raise BadInputError(f"no edge nodes in region {region!r}")
    step = step or history_step(len(ids), span_seconds)
    start = end - int(span_seconds // step) * step
    # The whole fleet's model (node indices seed the noise), stepping only the region's nodes.
    model = FleetModel(fleet, seed=seed, start=start)
    nodes = [model.nodes[i] for i in ids]
    spool = Path(tempfile.mkdtemp(prefix="xzctl-history-", dir=out.parent))
    files: dict[str, IO[str]] = {}
    headers: dict[str, str] = {}
    samples = 0
    series = 0
    bases = {n.id: target_labels(n.region, n.id) for n in nodes}
    try:
        t = start
        while t <= end:
            series = 0  # the count at the last step is the fleet's series count
            model.process_arrivals(t)
            for node in nodes:
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


def main(argv: list[str] | None = None) -> int:
    """`python -m xzctl.simulator.history`: one region's history to a file, its stats as JSON on stdout. The sandbox
    runs one per region at once: the history is pure Python, so regions in parallel need processes."""
    from xzctl.spec import load_fleet

    parser = argparse.ArgumentParser(prog="python -m xzctl.simulator.history")
    parser.add_argument("--fleet", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--end", type=float, required=True)
    parser.add_argument("--span", type=float, required=True, help="seconds")
    args = parser.parse_args(argv)
    fleet = load_fleet(args.fleet).fleet
    stats = write_openmetrics_history(
        fleet, args.out, seed=args.seed, end=args.end, span_seconds=args.span, region=args.region
    )
    print(json.dumps({"start": stats.start, "step_seconds": stats.step, "samples": stats.samples}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
