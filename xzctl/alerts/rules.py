"""Prometheus alerting and recording rules generated from the fleet spec's KPIs and alert settings.

One source, two shapes: `rules_file(fleet)` is a plain Prometheus rule file, `prometheus_rule(fleet)`
the same groups as a prometheus-operator PrometheusRule object; `rule_groups(fleet)` is what both
(and the Pulumi program) use. Thresholds the spec leaves out come from the KPIs, so the alerts and
the KPIs cannot drift apart. Every alert carries `severity` and a `runbook_url` to runbooks/<Alert>.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.spec.models import Fleet
from xzctl.spec.sinks import go_template_text

NODE_LABELS = (c.REGION, c.NODE)
NODE_SERVICE = (c.REGION, c.NODE, c.SERVICE)
TRACK_LABELS = (c.REGION, c.NODE, c.SERVICE, c.TRACK)
CANARY_LATENCY_FACTOR = 1.2  # canary p95 more than 20% over stable
CANARY_ERROR_MARGIN = 0.01  # or one point of error ratio more than stable
EDGE_NODE_DOWN_FOR = "1m"
CANARY_FOR = "5m"
CACHE_WINDOW = "10m"
# The seed sets no accuracy KPI; 30 % word errors is where a voice assistant stops understanding commands.
ASR_WER_LIMIT = 0.3
ASR_WER_FOR = "10m"
ASR_WER_WINDOW = "10m"
# Turns as devices measure them (emulated or probe devices): a window that holds a few turns per device at the
# realistic one turn per device per 20 s.
TURN_WINDOW = "10m"
TURN_FOR = "5m"


@dataclass(frozen=True)
class BurnWindow:
    """One multi-window, multi-burn-rate alert (Google SRE workbook, chapter 5)."""

    long: str
    short: str
    factor: float
    for_: str
    severity: str


BURN_WINDOWS = (
    BurnWindow("1h", "5m", 14.4, "2m", "critical"),
    BurnWindow("6h", "30m", 6.0, "15m", "critical"),
    BurnWindow("1d", "2h", 3.0, "1h", "warning"),
    BurnWindow("3d", "6h", 1.0, "3h", "warning"),
)
SLO_WINDOWS = tuple(dict.fromkeys(w for b in BURN_WINDOWS for w in (b.short, b.long)))

# Alerts about one edge node: silenced while EdgeNodeDown fires for that node (see alertmanager.py).
NODE_ALERTS = (
    "HighLatency",
    "DeviceOverload",
    "ModelInferenceFailure",
    "CacheHitRateLow",
    "QueueBacklog",
    "CanaryDegraded",
    "AsrAccuracyLow",
    "TurnLatencyHigh",
    "TurnFailures",
)
ALERT_NAMES = (*NODE_ALERTS, "EdgeNodeDown", "AvailabilityBudgetBurn", "LatencyBudgetBurn")


def _record_name(level: str, metric: str, operation: str) -> str:
    return f"{level}:{metric}:{operation}"


P95_BY_TRACK = _record_name("node_service_track", "xiaozhi_request_duration_seconds", "p95_rate5m")
ERRORS_BY_TRACK = _record_name("node_service_track", "xiaozhi_requests", "error_ratio_rate5m")


def availability_record(window: str) -> str:
    return _record_name("region", "xiaozhi_requests", f"error_ratio_rate{window}")


def latency_record(window: str) -> str:
    return _record_name("region", "xiaozhi_request_duration_seconds", f"slow_ratio_rate{window}")


def latency_slo_threshold(fleet: Fleet) -> float:
    """The end-to-end KPI as a histogram bucket bound: the largest bound not above it (never lenient)."""
    target = fleet.kpis.latency.end_to_end_ms / 1000.0
    fitting = [b for b in c.LATENCY_BUCKETS if b <= target + 1e-9]
    return fitting[-1] if fitting else c.LATENCY_BUCKETS[0]


def _alert(
    fleet: Fleet, name: str, expr: str, *, for_: str, severity: str, summary: str, description: str, **labels: str
) -> dict[str, Any]:
    # Annotations are Go templates: the spec's URL goes in as a literal, never as template code.
    base = go_template_text(fleet.alerts.runbook_base_url.rstrip("/"))
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity, **labels}
    rule["annotations"] = {"summary": summary, "description": description, "runbook_url": f"{base}/{name}.md"}
    return rule


def node_alerts(fleet: Fleet) -> list[dict[str, Any]]:
    """The seed's five per-node alerts plus EdgeNodeDown and CanaryDegraded."""
    a, kpis = fleet.alerts, fleet.kpis
    p95_limit = a.high_latency.p95_seconds or kpis.latency.end_to_end_ms / 1000.0
    error_limit = a.model_inference_failure.error_ratio or kpis.reliability.error_rate_percent / 100.0
    cache_floor = a.cache_hit_rate_low.min_ratio or kpis.efficiency.cache_hit_percent / 100.0
    where = "{{ $labels.node }} ({{ $labels.region }})"
    rules = [
        _alert(
            fleet,
            "HighLatency",
            f"{q.p95_latency('end_to_end', by=NODE_LABELS)} > {p95_limit:g}",
            for_=a.high_latency.for_,
            severity="warning",
            summary=f"End-to-end p95 latency above {p95_limit:g} s on {where}",
            description=f"p95 from speech end to first audio is {{{{ $value | humanizeDuration }}}} (limit {p95_limit:g} s).",
        ),
    ]
    by_capacity: dict[int, list[str]] = {}
    for node in fleet.edge_nodes():
        by_capacity.setdefault(node.capacity.max_devices, []).append(node.id)
    # One rule per distinct max_devices: the rule count follows hardware profiles, not node count.
    for max_devices, nodes in sorted(by_capacity.items()):
        rules.append(
            _alert(
                fleet,
                "DeviceOverload",
                f"{q.active_devices(filters={c.NODE: nodes})} > {max_devices}",
                for_=a.device_overload.for_,
                severity="warning",
                summary=f"More devices than max_devices ({max_devices}) on {where}",
                description=f"{{{{ $value }}}} devices hold a session; the node is sized for {max_devices}.",
            )
        )
    rules += [
        _alert(
            fleet,
            "ModelInferenceFailure",
            f"{q.inference_error_ratio(by=NODE_SERVICE)} > {error_limit:g}",
            for_=a.model_inference_failure.for_,
            severity="critical",
            summary=f"{{{{ $labels.service }}}} inference failing on {where}",
            description=f"{{{{ $value | humanizePercentage }}}} of {{{{ $labels.service }}}} requests fail (limit {error_limit:.2%}).",
        ),
        _alert(
            fleet,
            "CacheHitRateLow",
            f"{q.cache_hit_ratio(window=CACHE_WINDOW)} < {cache_floor:g}",
            for_=a.cache_hit_rate_low.for_,
            severity="warning",
            summary=f"Cache hit ratio below {cache_floor:.0%} on {where}",
            description=f"Only {{{{ $value | humanizePercentage }}}} of lookups are answered from L1/L2/L3 (floor {cache_floor:.0%}).",
        ),
        _alert(
            fleet,
            "QueueBacklog",
            f"{q.queue_size()} > {a.queue_backlog.max_queue}",
            for_=a.queue_backlog.for_,
            severity="warning",
            summary=f"{{{{ $labels.service }}}} queue above {a.queue_backlog.max_queue} on {where}",
            description="{{ $value }} requests wait for a {{ $labels.service }} replica.",
        ),
        _alert(
            fleet,
            "EdgeNodeDown",
            f"{q.node_up()} == 0",
            for_=EDGE_NODE_DOWN_FOR,
            severity="critical",
            summary=f"Edge node {where} unreachable",
            description="Prometheus cannot scrape the node; its devices should fail over within "
            f"{kpis.reliability.failover_seconds} s.",
        ),
        _alert(
            fleet,
            "CanaryDegraded",
            f'({P95_BY_TRACK}{{track="canary"}} > ignoring(track) {CANARY_LATENCY_FACTOR:g} * '
            f'{P95_BY_TRACK}{{track="stable"}}) or ignoring(track) ({ERRORS_BY_TRACK}{{track="canary"}} > '
            f'ignoring(track) {ERRORS_BY_TRACK}{{track="stable"}} + {CANARY_ERROR_MARGIN:g})',
            for_=CANARY_FOR,
            severity="warning",
            summary=f"Canary of {{{{ $labels.service }}}} worse than stable on {where}",
            description=f"The canary track's p95 is over {CANARY_LATENCY_FACTOR:g}x stable or its error ratio over stable + "
            f"{CANARY_ERROR_MARGIN:.0%}; pause or roll back the rollout.",
        ),
        _alert(
            fleet,
            "AsrAccuracyLow",
            f"{q.word_error_rate(window=ASR_WER_WINDOW, by=(c.REGION, c.NODE, c.TRACK))} > {ASR_WER_LIMIT:g}",
            for_=ASR_WER_FOR,
            severity="warning",
            summary=f"ASR word error rate above {ASR_WER_LIMIT:.0%} on {where} ({{{{ $labels.track }}}})",
            description=f"{{{{ $value | humanizePercentage }}}} of the known test speech's words come back wrong "
            f"(limit {ASR_WER_LIMIT:.0%}).",
        ),
        *turn_alerts(fleet, where),
    ]
    return rules


def turn_alerts(fleet: Fleet, where: str) -> list[dict[str, Any]]:
    """The seed's KPIs judged on turns as devices hear them (first reply audio, failed turns), not on the stages."""
    kpi_seconds = fleet.kpis.latency.end_to_end_ms / 1000.0
    failure_limit = fleet.kpis.reliability.error_rate_percent / 100.0
    return [
        _alert(
            fleet,
            "TurnLatencyHigh",
            f"{q.turn_latency_quantile(c.TURN_FIRST_AUDIO_SECONDS, window=TURN_WINDOW, by=NODE_LABELS)} > {kpi_seconds:g}",
            for_=TURN_FOR,
            severity="warning",
            summary=f"Devices wait over {kpi_seconds:g} s for the first reply audio on {where} (p95)",
            description=f"p95 from the end of a device's speech to its first reply audio is {{{{ $value | humanizeDuration }}}} "
            f"(KPI {kpi_seconds:g} s), measured by devices speaking the real protocol.",
        ),
        _alert(
            fleet,
            "TurnFailures",
            f"{q.turn_failure_ratio(window=TURN_WINDOW, by=NODE_LABELS)} > {failure_limit:g}",
            for_=TURN_FOR,
            severity="warning",
            summary=f"Device turns failing on {where}",
            description=f"{{{{ $value | humanizePercentage }}}} of the devices' turns got no complete reply (KPI {failure_limit:.1%}); "
            "xiaozhi_turn_failures_total says how (connect, auth, timeout, ...).",
        ),
    ]


def _burn_alerts(
    fleet: Fleet, name: str, record: Callable[[str], str], *, budget: float, slo: str, what: str
) -> list[dict[str, Any]]:
    rules = []
    for w in BURN_WINDOWS:
        limit = w.factor * budget
        rules.append(
            _alert(
                fleet,
                name,
                f"{record(w.long)} > {limit:g} and {record(w.short)} > {limit:g}",
                for_=w.for_,
                severity=w.severity,
                summary=f"{slo} error budget burning {w.factor:g}x in {{{{ $labels.region }}}}",
                description=f"{what} over {w.long} and {w.short} is above {w.factor:g}x the budget ({limit:.3%}); at this rate the "
                f"30-day budget is gone in {30 / w.factor:.1f} days.",
                slo=slo,
                window=f"{w.long}/{w.short}",
            )
        )
    return rules


def rule_groups(fleet: Fleet) -> list[dict[str, Any]]:
    """Every rule group: recordings first in each group, so alerts read this evaluation's values."""
    availability_budget = 1.0 - fleet.kpis.reliability.uptime_percent / 100.0
    latency_threshold = latency_slo_threshold(fleet)
    latency_budget = 0.05  # the KPI is a p95: 5% of requests may be slower
    slo_records = [
        {"record": availability_record(w), "expr": q.error_ratio("end_to_end", window=w, by=(c.REGION,))}
        for w in SLO_WINDOWS
    ] + [
        {"record": latency_record(w), "expr": q.slow_request_ratio("end_to_end", latency_threshold, window=w)}
        for w in SLO_WINDOWS
    ]
    track_records = [
        {"record": P95_BY_TRACK, "expr": q.p95_latency(by=TRACK_LABELS)},
        {"record": ERRORS_BY_TRACK, "expr": q.error_ratio(by=TRACK_LABELS)},
    ]
    return [
        {"name": "xiaozhi-edge-nodes", "rules": track_records + q.node_recording_rules() + node_alerts(fleet)},
        {
            "name": "xiaozhi-slo",
            "rules": slo_records
            + _burn_alerts(
                fleet,
                "AvailabilityBudgetBurn",
                availability_record,
                budget=availability_budget,
                slo="availability",
                what="The end-to-end error ratio",
            )
            + _burn_alerts(
                fleet,
                "LatencyBudgetBurn",
                latency_record,
                budget=latency_budget,
                slo="latency",
                what=f"The share of end-to-end requests slower than {latency_threshold:g} s",
            ),
        },
    ]


def rules_file(fleet: Fleet) -> dict[str, Any]:
    """A Prometheus rule file (`rule_files:` in prometheus.yml; `promtool check rules`)."""
    return {"groups": rule_groups(fleet)}


def prometheus_rule(fleet: Fleet, namespace: str = "monitoring") -> dict[str, Any]:
    """The same groups as a prometheus-operator PrometheusRule object."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"{fleet.metadata.name}-alerts",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "xiaozhi", "app.kubernetes.io/managed-by": "xzctl"},
        },
        "spec": {"groups": rule_groups(fleet)},
    }


def alert_names(fleet: Fleet) -> list[str]:
    """Distinct alert names the rules define, in order."""
    return list(dict.fromkeys(r["alert"] for g in rule_groups(fleet) for r in g["rules"] if "alert" in r))
