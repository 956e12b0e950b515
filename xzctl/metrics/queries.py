"""PromQL builders shared by alert rules, live checks, the rollout analysis and dashboards.

Every query aggregates by labels (`by`), so the number of queries a check sends does not grow with
the number of edge nodes: one query answers for the whole fleet, grouped per region/node/service.
Filters are label matchers: a string is an exact match, a sequence of strings a regex alternation
(`{node=~"a|b"}`). Nobody else writes PromQL strings; add a builder here instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from xzctl.errors import BadInputError
from xzctl.metrics import contract as c
from xzctl.metrics import recorded


class Regex(str):
    """A matcher value used as a raw regex (`=~`), e.g. a Grafana variable: Regex("$region")."""

    __slots__ = ()


Filters = Mapping[str, str | Sequence[str]]
By = Sequence[str]

NODE_BY: tuple[str, ...] = (c.REGION, c.NODE)
SERVICE_BY: tuple[str, ...] = (c.REGION, c.NODE, c.SERVICE, c.TRACK)


# RE2 metacharacters; node ids and regions are DNS labels, so most values pass unchanged and stay readable.
_REGEX_META = re.compile(r"[.^$*+?()\[\]{}|\\]")


def _literal(value: str) -> str:
    """`value` as a regex matching exactly itself."""
    return _REGEX_META.sub(lambda m: "\\" + m.group(0), value)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(filters: Filters | None = None, *, job: bool = True) -> str:
    """A label selector `{job="xiaozhi-edge",region="beijing",node=~"a|b"}`; empty filters match all."""
    parts = [f"job={_quote(c.EDGE_JOB)}"] if job else []
    for label, value in sorted((filters or {}).items()):
        if isinstance(value, Regex):
            parts.append(f"{label}=~{_quote(value)}")
        elif isinstance(value, str):
            parts.append(f"{label}={_quote(value)}")
        else:
            parts.append(f"{label}=~{_quote('|'.join(_literal(v) for v in value))}")
    return "{" + ",".join(parts) + "}"


def _narrowed(filters: Filters | None, label: str, value: str | None) -> dict[str, str | Sequence[str]]:
    """`filters` plus label=value when a value is given (a builder's service or tier argument)."""
    merged: dict[str, str | Sequence[str]] = dict(filters or {})
    if value is not None:
        merged[label] = value
    return merged


def _by(by: By) -> str:
    return f" by ({', '.join(by)})" if by else ""


def _sum_rate(metric: str, filters: Filters | None, window: str, by: By) -> str:
    return f"sum{_by(by)} (rate({metric}{selector(filters)}[{window}]))"


def _ratio(numerator: str, denominator: str) -> str:
    # clamp_min keeps an idle group (zero requests) from dividing by zero into NaN.
    return f"({numerator}) / clamp_min({denominator}, 1e-9)"


def latency_quantile(
    service: str | None = None,
    *,
    quantile: float = 0.95,
    window: str = "5m",
    by: By = SERVICE_BY,
    filters: Filters | None = None,
) -> str:
    """Latency quantile (seconds) of a service (vad, asr, llm, tts, end_to_end) from the histogram."""
    merged = _narrowed(filters, c.SERVICE, service)
    group = tuple(dict.fromkeys((*by, "le")))
    buckets = _sum_rate(f"{c.REQUEST_DURATION.name}_bucket", merged, window, group)
    return f"histogram_quantile({quantile:g}, {buckets})"


def p95_latency(
    service: str | None = None, *, window: str = "5m", by: By = SERVICE_BY, filters: Filters | None = None
) -> str:
    """p95 latency (seconds) per service and track, the KPI's percentile."""
    return latency_quantile(service, quantile=0.95, window=window, by=by, filters=filters)


def slow_request_ratio(
    service: str, threshold_seconds: float, *, window: str = "5m", by: By = (c.REGION,), filters: Filters | None = None
) -> str:
    """Share of requests slower than `threshold_seconds` (a histogram bucket bound): the latency SLO's bad events."""
    if threshold_seconds not in c.LATENCY_BUCKETS:
        raise BadInputError(f"{threshold_seconds} s is not a bucket bound of {c.REQUEST_DURATION.name}")
    merged = {**(filters or {}), c.SERVICE: service}
    fast = _sum_rate(f"{c.REQUEST_DURATION.name}_bucket", {**merged, "le": f"{threshold_seconds:g}"}, window, by)
    total = _sum_rate(f"{c.REQUEST_DURATION.name}_count", merged, window, by)
    return f"1 - {_ratio(fast, total)}"


def request_rate(
    service: str | None = None, *, window: str = "5m", by: By = SERVICE_BY, filters: Filters | None = None
) -> str:
    """Requests per second served per stage."""
    merged = _narrowed(filters, c.SERVICE, service)
    return _sum_rate(c.REQUESTS.name, merged, window, by)


def error_ratio(
    service: str | None = None, *, window: str = "5m", by: By = SERVICE_BY, filters: Filters | None = None
) -> str:
    """Share of requests with result=error (0..1)."""
    merged = _narrowed(filters, c.SERVICE, service)
    errors = _sum_rate(c.REQUESTS.name, {**merged, "result": "error"}, window, by)
    return _ratio(errors, request_rate(service, window=window, by=by, filters=filters))


def inference_error_ratio(
    service: str | None = None, *, window: str = "5m", by: By = SERVICE_BY, filters: Filters | None = None
) -> str:
    """Model inference failures per request (0..1)."""
    merged = _narrowed(filters, c.SERVICE, service)
    failures = _sum_rate(c.INFERENCE_ERRORS.name, merged, window, by)
    return _ratio(failures, request_rate(service, window=window, by=by, filters=filters))


def word_error_rate(*, window: str = "5m", by: By = (c.REGION, c.NODE, c.TRACK), filters: Filters | None = None) -> str:
    """ASR word error rate (0..1, can exceed 1 with insertions): word edits / words of the known spoken text."""
    errors = _sum_rate(c.ASR_WORD_ERRORS.name, filters, window, by)
    words = _sum_rate(c.ASR_REFERENCE_WORDS.name, filters, window, by)
    return _ratio(errors, words)


def observations(
    metric: c.Metric,
    service: str | None = None,
    *,
    window: str = "5m",
    by: By = SERVICE_BY,
    filters: Filters | None = None,
) -> str:
    """How many observations a latency histogram took in the window: the requests or turns behind a quantile."""
    if metric.type is not c.MetricType.HISTOGRAM:
        raise BadInputError(f"{metric.name} is not a histogram")
    merged = _narrowed(filters, c.SERVICE, service)
    return f"sum{_by(by)} (increase({metric.name}_count{selector(merged)}[{window}]))"


def turn_latency_quantile(
    metric: c.Metric,
    *,
    quantile: float = 0.95,
    window: str = "5m",
    by: By = (c.REGION, c.NODE, c.TRACK),
    filters: Filters | None = None,
) -> str:
    """Quantile (seconds) of a device turn's latency histogram (TURN_STT_SECONDS, TURN_FIRST_AUDIO_SECONDS or
    TURN_SECONDS): what devices measured through the xiaozhi server, not what one service measured."""
    if metric not in (c.TURN_STT_SECONDS, c.TURN_FIRST_AUDIO_SECONDS, c.TURN_SECONDS):
        raise BadInputError(f"{metric.name} is not a turn latency histogram")
    buckets = _sum_rate(f"{metric.name}_bucket", filters, window, tuple(dict.fromkeys((*by, "le"))))
    return f"histogram_quantile({quantile:g}, {buckets})"


def turn_failure_ratio(
    *, window: str = "5m", by: By = (c.REGION, c.NODE, c.TRACK), filters: Filters | None = None
) -> str:
    """Share of device turns that failed (0..1), whatever the kind."""
    failed = _sum_rate(c.TURNS.name, {**(filters or {}), "result": "failed"}, window, by)
    return _ratio(failed, _sum_rate(c.TURNS.name, filters, window, by))


def cache_hit_ratio(
    tier: str | None = None, *, window: str = "5m", by: By = NODE_BY, filters: Filters | None = None
) -> str:
    """Share of lookups answered from cache (0..1).

    For one tier (l1, l2, l3): its hits / its lookups. For the whole cache (tier=None): hits in any
    tier / lookups at L1, since every request starts at L1 and only misses go on to L2 and L3.
    """
    merged = _narrowed(filters, c.TIER, tier)
    hits = _sum_rate(c.CACHE_REQUESTS.name, {**merged, c.RESULT: "hit"}, window, by)
    lookups = _sum_rate(c.CACHE_REQUESTS.name, {**merged, c.TIER: tier or c.CACHE_TIERS[0]}, window, by)
    return _ratio(hits, lookups)


def cpu_utilization(*, window: str = "5m", by: By = NODE_BY, filters: Filters | None = None) -> str:
    """Busy CPU share of the node (0..1): 1 - idle share, node-exporter style."""
    idle = f"{c.NODE_CPU_SECONDS.name}{selector({**(filters or {}), 'mode': 'idle'})}"
    return f"1 - avg{_by(by)} (rate({idle}[{window}]))"


def memory_utilization(*, by: By = NODE_BY, filters: Filters | None = None) -> str:
    """Used memory share of the node (0..1)."""
    sel = selector(filters)
    available = f"sum{_by(by)} ({c.NODE_MEMORY_AVAILABLE.name}{sel})"
    total = f"sum{_by(by)} ({c.NODE_MEMORY_TOTAL.name}{sel})"
    return f"1 - {available} / clamp_min({total}, 1)"


def gpu_utilization(*, by: By = NODE_BY, filters: Filters | None = None) -> str:
    """Mean GPU utilization of the node's GPUs (0..1; DCGM reports percent)."""
    return f"avg{_by(by)} ({c.GPU_UTIL.name}{selector(filters)}) / 100"


def gpu_memory_utilization(*, by: By = NODE_BY, filters: Filters | None = None) -> str:
    """GPU framebuffer used share (0..1)."""
    sel = selector(filters)
    used = f"sum{_by(by)} ({c.GPU_FB_USED.name}{sel})"
    free = f"sum{_by(by)} ({c.GPU_FB_FREE.name}{sel})"
    return f"{used} / clamp_min({used} + {free}, 1)"


def active_devices(*, by: By = NODE_BY, filters: Filters | None = None) -> str:
    """Devices with an open session."""
    return f"sum{_by(by)} ({c.ACTIVE_DEVICES.name}{selector(filters)})"


def queue_size(service: str | None = None, *, by: By = (*NODE_BY, c.SERVICE), filters: Filters | None = None) -> str:
    """Requests waiting for a replica (peak over the group's series)."""
    merged = _narrowed(filters, c.SERVICE, service)
    return f"max{_by(by)} ({c.QUEUE_SIZE.name}{selector(merged)})"


def node_up(*, by: By = NODE_BY, filters: Filters | None = None) -> str:
    """1 when Prometheus reached the edge node at the last scrape, 0 when not."""
    return f"max{_by(by)} (up{selector(filters)})"


def nodes_up_count(*, filters: Filters | None = None) -> str:
    """How many edge nodes Prometheus reached at the last scrape (one number for the whole fleet)."""
    return f"count({node_up(filters=filters)} == 1)"


def scrapes(*, window: str, by: By = NODE_BY, filters: Filters | None = None) -> str:
    """Scrapes of each group's edge nodes in the window (the fewest of its targets), answered or not."""
    return f"min{_by(by)} (count_over_time(up{selector(filters)}[{window}]))"


def nodes_scraped(times: int, *, window: str, filters: Filters | None = None) -> str:
    """How many edge nodes were scraped at least `times` times in the window and are up at the last scrape."""
    counts = scrapes(window=window, filters=filters)
    return f"count(({counts} >= {times}) and on ({', '.join(NODE_BY)}) ({node_up(filters=filters)} == 1))"


def scrape_age_seconds(*, by: By = NODE_BY, filters: Filters | None = None) -> str:
    """Seconds since the newest sample of each node: large values mean missing or stale metrics."""
    return f"time() - max{_by(by)} (timestamp({c.ACTIVE_DEVICES.name}{selector(filters)}))"


def counter_changes(*, window: str, min_samples: int = 3, by: By = NODE_BY, filters: Filters | None = None) -> str:
    """Changes of the CPU time counters in the window: 0 on a live node means its exporter serves frozen values.

    Only groups with `min_samples` samples in the window answer: fewer samples (scraping just began, or the
    window reaches back into a sparser backfill) cannot show a change, and must not read as frozen."""
    series = f"{c.NODE_CPU_SECONDS.name}{selector(filters)}[{window}]"
    samples = f"min{_by(by)} (count_over_time({series}))"
    return f"sum{_by(by)} (changes({series})) and on ({', '.join(by)}) ({samples} >= {min_samples})"


def running_images(*, by: By = (*SERVICE_BY, c.IMAGE), filters: Filters | None = None) -> str:
    """Which image serves which service and track where (from the build-info gauge)."""
    return f"max{_by(by)} ({c.BUILD_INFO.name}{selector(filters)})"


# prometheus-adapter external-metric rules: the adapter fills <<.LabelMatchers>> with the HPA's selector (a node
# and service), and the query answers one number for it. One rule per autoscaling signal; HPAs read them as
# external metrics by these names.
ADAPTER_SIGNALS = {
    "queue_depth": ("xiaozhi_queue_depth", c.QUEUE_SIZE.name),
    "requests": ("xiaozhi_requests_per_second", c.REQUESTS.name),
    "p95_latency": ("xiaozhi_p95_latency_seconds", f"{c.REQUEST_DURATION.name}_bucket"),
}


def adapter_rule(signal: str, *, window: str = "2m") -> dict[str, object]:
    """The prometheus-adapter `rules.external` entry serving `signal` (a spec ScalingSignal value)."""
    name, series = ADAPTER_SIGNALS[signal]
    matchers = "<<.LabelMatchers>>"
    if signal == "queue_depth":
        query = f"sum({series}{{{matchers}}})"
    elif signal == "requests":
        query = f"sum(rate({series}{{{matchers}}}[{window}]))"
    else:
        query = f"histogram_quantile(0.95, sum by (le) (rate({series}{{{matchers}}}[{window}])))"
    return {
        "seriesQuery": f"{series}{selector()}",
        # Edge series carry region/node, not a namespace: the metric is cluster-wide, the HPA's selector narrows it.
        "resources": {"namespaced": False},
        "name": {"as": name},
        "metricsQuery": query,
    }


def hourly_active_devices(*, by: By = (c.REGION,), filters: Filters | None = None) -> str:
    """Devices in a session, averaged over the hour (the forecast's input; robust to a backfill's coarse step)."""
    return f"sum{_by(by)} (avg_over_time({c.ACTIVE_DEVICES.name}{selector(filters)}[1h]))"


def hourly_request_rate(service: str = "end_to_end", *, by: By = (c.REGION,), filters: Filters | None = None) -> str:
    """Requests per second over the hour: the load the forecast follows beside the devices."""
    return _sum_rate(c.REQUESTS.name, _narrowed(filters, c.SERVICE, service), "1h", by)


def service_replicas(*, by: By = (*NODE_BY, c.SERVICE), filters: Filters | None = None) -> str:
    """Replicas running per node and service (what the autoscalers decided)."""
    return f"max{_by(by)} ({c.SERVICE_REPLICAS.name}{selector(filters)})"


# The per-node figures a fleet snapshot reads with a rate window (xzctl.checks.snapshot), by figure. Recording rules
# (rendered with the alert rules) record exactly these expressions at recorded.RECORDED_WINDOW, so a check with that
# window reads one precomputed series per node and figure; with another window it sends the expressions themselves.
_NODE_LATENCY_BY = (c.REGION, c.NODE, c.SERVICE)
_RECORDED_NODE_FIGURES = {
    "p95_latency": recorded.NODE_P95,
    "error_ratio": recorded.NODE_ERROR_RATIO,
    "cache_hit_ratio": recorded.NODE_CACHE_HIT,
    "cpu_utilization": recorded.NODE_CPU,
}


def node_figures(window: str, filters: Filters | None = None) -> dict[str, str]:
    """The raw PromQL of each per-node figure over `window` (latency p95 also by service)."""
    return {
        "p95_latency": p95_latency(window=window, by=_NODE_LATENCY_BY, filters=filters),
        "error_ratio": error_ratio(window=window, by=NODE_BY, filters=filters),
        "cache_hit_ratio": cache_hit_ratio(window=window, by=NODE_BY, filters=filters),
        "cpu_utilization": cpu_utilization(window=window, by=NODE_BY, filters=filters),
    }


def node_figure_reads(window: str, filters: Filters | None = None) -> dict[str, str]:
    """What a snapshot sends for each figure: the recorded series at the recorded window (they keep the region and
    node labels, not the job's), else the raw PromQL."""
    if window != recorded.RECORDED_WINDOW:
        return node_figures(window, filters)
    narrowed = selector(filters, job=False) if filters else ""
    return {figure: record + narrowed for figure, record in _RECORDED_NODE_FIGURES.items()}


def node_recording_rules() -> list[dict[str, str]]:
    """The recording rules of the per-node figures (Prometheus rule-file entries)."""
    raw = node_figures(recorded.RECORDED_WINDOW)
    return [{"record": record, "expr": raw[figure]} for figure, record in _RECORDED_NODE_FIGURES.items()]
