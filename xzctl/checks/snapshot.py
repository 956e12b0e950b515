"""One consistent snapshot of the fleet's live metrics, in a fixed number of PromQL queries per region.

Every query is aggregated by labels (xzctl.metrics.queries) and narrowed to one region (xzctl.prom.regions), so the
query count grows with regions, not edge nodes, and each answer is bounded by a region's size. All instant queries
are evaluated at the same instant. Whatever keeps a node's numbers from being trusted (no target, target down,
stale or NaN series, a missing metric family, its region not answering) is recorded on the node as a problem: the
checks then call that node unknown, never ok; the other regions' nodes keep their numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient, Sample
from xzctl.prom.regions import per_region
from xzctl.spec import EdgeNode, Fleet

NODE_BY = (c.REGION, c.NODE)


@dataclass(kw_only=True)
class Readings:
    """The live readings of a node, a region or the fleet. Utilizations are fractions (0..1), latency in seconds."""

    cpu: float | None = None
    memory: float | None = None
    gpu: float | None = None
    latency_p95: dict[str, float] = field(default_factory=dict)
    error_ratio: float | None = None
    queue: float | None = None
    cache_hit: float | None = None


@dataclass
class NodeMetrics(Readings):
    """Live numbers of one edge node."""

    node: str
    region: str
    devices: float | None = None
    history: list[tuple[float, float]] = field(default_factory=list)  # (unix time, active devices)
    problems: list[str] = field(default_factory=list)  # why the numbers cannot be trusted

    @property
    def known(self) -> bool:
        return not self.problems


@dataclass
class FleetSnapshot:
    fleet: Fleet
    nodes: dict[str, NodeMetrics]
    taken_at: float
    queries: int
    prometheus_url: str

    def by_region(self) -> dict[str, list[NodeMetrics]]:
        out: dict[str, list[NodeMetrics]] = {name: [] for name in self.fleet.regions}
        for m in self.nodes.values():
            out[m.region].append(m)
        return out


@dataclass(frozen=True)
class SnapshotOptions:
    window: str = "5m"  # rate window of latency, errors and cache ratios
    history_seconds: float = 7 * 86400  # how far back the forecast looks; 0: no forecast
    history_points: int = 120  # points per series of the history range query
    scrape_interval_seconds: float | None = None  # default: each node's monitoring.metrics_interval_seconds


def _by_node(samples: list[Sample]) -> dict[str, float]:
    return {s.labels[c.NODE]: s.value for s in samples if c.NODE in s.labels}


def expected_services(node: EdgeNode) -> list[str]:
    """The services whose p95 the node must report: its inference stages and end to end."""
    return [*node.services.inference(), "end_to_end"]


def _region_round(
    client: PrometheusClient, region: str, at: float, options: SnapshotOptions, frozen_window: str
) -> tuple[list[list[Sample]], dict[str, list[Sample]], dict[str, list[tuple[float, float]]]]:
    """One region's plain answers (in the order of `_plain_queries`), its rate figures by name and its devices
    history per node."""
    only = {c.REGION: region}
    plain, figures = _node_figures(client, options.window, _plain_queries(frozen_window, only), at, only)
    history: dict[str, list[tuple[float, float]]] = {}
    if options.history_seconds > 0:  # 0: no forecast wanted (failover, cost), one query fewer
        step = max(options.history_seconds / options.history_points, 1.0)
        start = at - options.history_seconds
        for series in client.query_range(q.active_devices(by=NODE_BY, filters=only), start, at, step):
            history[series.labels.get(c.NODE, "")] = [(t, v) for t, v in series.points if math.isfinite(v)]
    return plain, figures, history


def _plain_queries(frozen_window: str, only: dict[str, str]) -> list[str]:
    """up, scrape age, devices, memory, gpu, queue, counter changes: the order take_snapshot reads them in."""
    return [
        q.node_up(by=NODE_BY, filters=only),
        q.scrape_age_seconds(by=NODE_BY, filters=only),
        q.active_devices(by=NODE_BY, filters=only),
        q.memory_utilization(by=NODE_BY, filters=only),
        q.gpu_utilization(by=NODE_BY, filters=only),
        q.queue_size(by=NODE_BY, filters=only),
        q.counter_changes(window=frozen_window, min_samples=3, by=NODE_BY, filters=only),
    ]


def _node_figures(
    client: PrometheusClient, window: str, plain: list[str], at: float, only: dict[str, str]
) -> tuple[list[list[Sample]], dict[str, list[Sample]]]:
    """The answers to `plain`, and to each rate figure by name, read from its recorded series where the window is
    the recorded one. A Prometheus without the recording rules (a site's own, or one before its first evaluation)
    has no recorded series at all: those figures are then read raw, in a second round."""
    reads = q.node_figure_reads(window, only)
    answers = client.query_many([*plain, *reads.values()], at)
    figures = dict(zip(reads, answers[len(plain) :], strict=True))
    raw = q.node_figures(window, only)
    missing = [f for f, query in reads.items() if query != raw[f] and not figures[f]]
    if missing:
        figures.update(zip(missing, client.query_many([raw[f] for f in missing], at), strict=True))
    return answers[: len(plain)], figures


def take_snapshot(
    client: PrometheusClient, fleet: Fleet, options: SnapshotOptions = SnapshotOptions(), *, now: float | None = None
) -> FleetSnapshot:
    """Query the fleet's metrics (12 queries per region whatever its size, 4 more from a Prometheus without the
    recording rules; regions in parallel) and attach every trust problem per node; a region that does not answer
    makes its nodes unknown."""
    at = time.time() if now is None else now
    before = client.query_count
    intervals = {
        n.id: options.scrape_interval_seconds or n.monitoring.metrics_interval_seconds for n in fleet.edge_nodes()
    }
    # Three scrapes of a live node's CPU counters always change; none changing means a frozen exporter. The window
    # spans four scrape intervals so that it holds three samples even when a scrape comes late.
    frozen_window = f"{math.ceil(4 * max(intervals.values(), default=10))}s"
    regions = list(dict.fromkeys(node.region for node in fleet.edge_nodes()))
    split = per_region(regions, lambda region: _region_round(client, region, at, options, frozen_window))
    if regions and not split.answers:  # nothing answered: Prometheus itself is the problem, say so as one error
        raise next(iter(split.failed.values()))
    answers: list[list[Sample]] = [[] for _ in _plain_queries(frozen_window, {})]
    figures: dict[str, list[Sample]] = {f: [] for f in q.node_figures(options.window)}
    history: dict[str, list[tuple[float, float]]] = {}
    for region_answers, region_figures, region_history in split.answers.values():
        for merged, answer in zip(answers, region_answers, strict=True):
            merged.extend(answer)
        for name, samples in region_figures.items():
            figures[name].extend(samples)
        history |= region_history
    up, age, devices, memory, gpu, queue, changes = (_by_node(a) for a in answers)
    cpu, errors, cache = (_by_node(figures[f]) for f in ("cpu_utilization", "error_ratio", "cache_hit_ratio"))
    latency: dict[str, dict[str, float]] = {}
    for s in figures["p95_latency"]:
        latency.setdefault(s.labels.get(c.NODE, ""), {})[s.labels.get(c.SERVICE, "")] = s.value

    nodes: dict[str, NodeMetrics] = {}
    for node in fleet.edge_nodes():
        m = NodeMetrics(
            node=node.id,
            region=node.region,
            devices=devices.get(node.id),
            cpu=cpu.get(node.id),
            memory=memory.get(node.id),
            gpu=gpu.get(node.id),
            latency_p95=latency.get(node.id, {}),
            error_ratio=errors.get(node.id),
            queue=queue.get(node.id),
            cache_hit=cache.get(node.id),
            history=history.get(node.id, []),
        )
        if node.region in split.failed:
            m.problems = [f"region {node.region} did not answer: {split.failed[node.region].message}"]
        else:
            m.problems = _problems(node, m, up.get(node.id), age.get(node.id), intervals[node.id])
        # No answer: fewer than three samples in the window, too few to call the exporter frozen.
        if node.id in up and up[node.id] >= 1 and changes.get(node.id) == 0:
            m.problems.insert(0, f"stale metrics: CPU counters unchanged for {frozen_window} (exporter frozen)")
        nodes[node.id] = m
    return FleetSnapshot(
        fleet=fleet,
        nodes=nodes,
        taken_at=at,
        queries=client.query_count - before,
        prometheus_url=client.url,
    )


def _problems(node: EdgeNode, m: NodeMetrics, up: float | None, age: float | None, interval: float) -> list[str]:
    # NaN/±Inf are missing data: a NaN age would otherwise pass `age > 2 * interval` as fresh.
    up, age = (v if v is not None and math.isfinite(v) else None for v in (up, age))
    if up is None:
        return [f"no scrape target for this node in job {c.EDGE_JOB} (no metrics)"]
    if up < 1:
        return ["scrape target down (up == 0): no current metrics"]
    if age is None or m.devices is None:
        return [f"no {c.ACTIVE_DEVICES.name} series (no metrics)"]
    if age > 2 * interval:
        return [f"stale metrics: newest sample {age:.0f} s old (> 2 x {interval:g} s scrape interval)"]
    values: dict[str, float | None] = {
        "active devices": m.devices,
        "CPU utilization": m.cpu,
        "memory utilization": m.memory,
        "queue size": m.queue,
    }
    if node.capacity.gpu.count > 0:
        values["GPU utilization"] = m.gpu
    if m.devices > 0:
        # An idle node legitimately has no request rates; a busy one must have them.
        values["error ratio"] = m.error_ratio
        values["cache hit ratio"] = m.cache_hit
        for service in expected_services(node):
            values[f"p95 latency of {service}"] = m.latency_p95.get(service)
    problems = []
    for name, value in values.items():
        if value is None:
            problems.append(f"no {name} series")
        elif not math.isfinite(value):
            problems.append(
                f"{name} is {'NaN' if math.isnan(value) else value} (no samples in the window: exporter frozen or idle?)"
            )
    return problems
