"""docs/metrics.md, rendered from the contract (a test fails when the page and the contract differ).

Regenerate with: XZCTL_UPDATE_GOLDEN=1 python -m pytest tests/metrics
"""

from __future__ import annotations

from xzctl.metrics import contract as c

SEED_NOTES = {
    "active_devices": "renamed with the `xiaozhi_` prefix so fleet metrics never clash with other exporters",
    "http_request_duration_seconds": "the stages are not all HTTP (VAD runs in process, ASR streams over "
    "WebSocket), so the histogram is per pipeline stage (`service`) and rollout `track`",
    "model_inference_errors_total": "same meaning, `xiaozhi_` prefix, with `service`, `track` and `image`",
    "cache_hit_rate": "a ratio gauge cannot be summed over nodes or windows; hits and misses are counters per "
    "tier and the hit ratio is computed in PromQL (`xzctl.metrics.queries.cache_hit_ratio`)",
    "processing_queue_size": "same meaning, `xiaozhi_` prefix, per `service`",
}


def _sample_names(metric: c.Metric) -> str:
    if metric.type is c.MetricType.HISTOGRAM:
        return ", ".join(f"`{metric.name}_{s}`" for s in ("bucket", "sum", "count"))
    return f"`{metric.name}`"


def render_metrics_doc() -> str:
    lines = [
        "# Metrics contract",
        "",
        "<!-- Generated from xzctl/metrics/contract.py by xzctl/metrics/doc.py; do not edit by hand. -->",
        "",
        "What the fleet's edge services expose, and so what alerts, checks, rollouts, dashboards and the",
        f"simulator read. Job `{c.EDGE_JOB}` scrapes each service's own /metrics (the simulator: one target per",
        f"edge node); the scrape config sets the target labels `{c.REGION}` and `{c.NODE}` on every series, so",
        f'`max by ({c.NODE}) (up{{job="{c.EDGE_JOB}"}}) == 0` means the edge node is unreachable.',
        "",
        "## Metrics",
        "",
        "| Metric | Type | Labels (besides region, node) | Unit | Meaning |",
        "|---|---|---|---|---|",
    ]
    for m in c.ALL:
        labels = ", ".join(f"`{label}`" for label in m.labels if label not in (c.REGION, c.NODE)) or "-"
        lines.append(f"| {_sample_names(m)} | {m.type.value} | {labels} | {m.unit or '-'} | {m.help} |")
    lines += [
        "",
        "## Label values",
        "",
        f"- `{c.SERVICE}`: {', '.join(f'`{s}`' for s in c.SERVICES)} (`end_to_end`: speech end to first audio, "
        "measured by the load generator, or by a coordinator where a site runs one); on `xiaozhi_build_info` it is any rolled-out service "
        "(also `xiaozhi_server`, `coordinator`)",
        f"- `{c.TRACK}`: {', '.join(f'`{t}`' for t in c.TRACKS)}; a canary takes a share of the node's traffic",
        f"- `{c.IMAGE}`: the image reference serving the series, as in the fleet spec",
        f"- `{c.TIER}`: {', '.join(f'`{t}`' for t in c.CACHE_TIERS)}; `{c.RESULT}`: `hit`, `miss`",
        f"- request latency buckets (seconds): {', '.join(f'{b:g}' for b in c.LATENCY_BUCKETS)}",
        f"- turn buckets (seconds): {', '.join(f'{b:g}' for b in c.TURN_BUCKETS)}",
        f"- where the KPIs sit (10 ms to 5 s; turns from 100 ms) a bound is at most {c.RESOLUTION:g}x the one before: "
        "a p95 is interpolated inside a bucket, and the rollout analysis compares a canary's p95 with its stable's",
        "",
        "## Names in the scaling plan",
        "",
        "| Plan's name | Contract | Why |",
        "|---|---|---|",
    ]
    for m in c.ALL:
        if m.seed_name:
            lines.append(f"| `{m.seed_name}` | {_sample_names(m)} | {SEED_NOTES.get(m.seed_name, 'same meaning')} |")
    lines += [
        "",
        "Node CPU and memory use node-exporter names, GPU metrics the NVIDIA DCGM exporter's, so the",
        "standard exporters satisfy the contract without relabelling.",
        "",
        "## Queries",
        "",
        "Every PromQL expression xzctl sends is built by `xzctl/metrics/queries.py` and aggregated by labels,",
        "so a check costs the same number of queries for 7 edge nodes or 1000. The cache hit ratio of the",
        "whole cache is hits in any tier over lookups at L1 (every request starts at L1).",
        "",
    ]
    return "\n".join(lines)
