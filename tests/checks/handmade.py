"""Hand-made snapshots of the bundled example fleet: every node at chosen numbers, no Prometheus."""

from __future__ import annotations

from xzctl.checks import FleetSnapshot
from xzctl.checks.snapshot import NodeMetrics
from xzctl.spec import Fleet

LATENCY = {"vad": 0.03, "asr": 0.25, "llm": 1.0, "tts": 0.15, "end_to_end": 1.5}


def metrics(node: str, region: str, **overrides: object) -> NodeMetrics:
    values: dict[str, object] = {
        "devices": 100.0,
        "cpu": 0.4,
        "memory": 0.5,
        "gpu": 0.6,
        "latency_p95": dict(LATENCY),
        "error_ratio": 0.0005,
        "queue": 2.0,
        "cache_hit": 0.9,
    }
    values.update(overrides)
    return NodeMetrics(node=node, region=region, **values)  # type: ignore[arg-type]


def snapshot(fleet: Fleet, **per_node: NodeMetrics) -> FleetSnapshot:
    nodes = {n.id: per_node.get(n.id.replace("-", "_")) or metrics(n.id, n.region) for n in fleet.edge_nodes()}
    return FleetSnapshot(fleet, nodes, taken_at=1_700_000_000.0, queries=12, prometheus_url="http://test")
