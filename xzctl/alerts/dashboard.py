"""A Grafana dashboard generated from the metrics contract: fleet overview, region, edge node rows.

Every panel's query comes from xzctl.metrics.queries, filtered by the templated variables `region`
and `node` (multi-value, "All" by default), so the dashboard and the alerts read the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.spec.models import Fleet

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
REGION_FILTER: q.Filters = {c.REGION: q.Regex("$region")}
NODE_FILTER: q.Filters = {c.REGION: q.Regex("$region"), c.NODE: q.Regex("$node")}
WIDTH = 24


@dataclass(frozen=True)
class Panel:
    title: str
    exprs: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    thresholds: tuple[float, ...] = ()


def _panels(fleet: Fleet) -> list[tuple[str, list[Panel]]]:
    kpi = fleet.kpis
    e2e = kpi.latency.end_to_end_ms / 1000.0
    fleet_by: tuple[str, ...] = ()
    region_by = (c.REGION,)
    return [
        (
            "Fleet overview",
            [
                Panel("Active devices", ((q.active_devices(by=fleet_by), "devices"),), kind="stat", width=6),
                Panel("Edge nodes up", ((f"sum({q.node_up()})", "up"),), kind="stat", width=6),
                Panel(
                    "End-to-end p95",
                    ((q.p95_latency("end_to_end", by=fleet_by), "p95"),),
                    unit="s",
                    kind="stat",
                    width=6,
                    thresholds=(e2e,),
                ),
                Panel(
                    "Error ratio",
                    ((q.error_ratio("end_to_end", by=fleet_by), "errors"),),
                    unit="percentunit",
                    kind="stat",
                    width=6,
                    thresholds=(kpi.reliability.error_rate_percent / 100.0,),
                ),
            ],
        ),
        (
            "Region $region",
            [
                Panel(
                    "Active devices per region",
                    ((q.active_devices(by=region_by, filters=REGION_FILTER), "{{region}}"),),
                ),
                Panel(
                    "p95 latency per service",
                    ((q.p95_latency(by=(c.SERVICE,), filters=REGION_FILTER), "{{service}}"),),
                    unit="s",
                ),
                Panel(
                    "Cache hit ratio",
                    ((q.cache_hit_ratio(by=region_by, filters=REGION_FILTER), "{{region}}"),),
                    unit="percentunit",
                    thresholds=(kpi.efficiency.cache_hit_percent / 100.0,),
                ),
                Panel(
                    "Request rate per service",
                    ((q.request_rate(by=(c.SERVICE,), filters=REGION_FILTER), "{{service}}"),),
                    unit="reqps",
                ),
                Panel(
                    "Error ratio per service and track",
                    ((q.error_ratio(by=(c.SERVICE, c.TRACK), filters=REGION_FILTER), "{{service}} {{track}}"),),
                    unit="percentunit",
                ),
                Panel(
                    "Inference error ratio",
                    ((q.inference_error_ratio(by=(c.SERVICE,), filters=REGION_FILTER), "{{service}}"),),
                    unit="percentunit",
                ),
            ],
        ),
        (
            "Edge node $node",
            [
                Panel("Active devices", ((q.active_devices(filters=NODE_FILTER), "{{node}}"),)),
                Panel(
                    "Queue size per service",
                    ((q.queue_size(filters=NODE_FILTER), "{{node}} {{service}}"),),
                ),
                Panel(
                    "p95 latency per service and track",
                    (
                        (
                            q.p95_latency(by=(c.NODE, c.SERVICE, c.TRACK), filters=NODE_FILTER),
                            "{{node}} {{service}} {{track}}",
                        ),
                    ),
                    unit="s",
                ),
                Panel(
                    "CPU",
                    ((q.cpu_utilization(filters=NODE_FILTER), "{{node}}"),),
                    unit="percentunit",
                    thresholds=(kpi.efficiency.cpu_percent / 100.0,),
                ),
                Panel(
                    "Memory",
                    ((q.memory_utilization(filters=NODE_FILTER), "{{node}}"),),
                    unit="percentunit",
                    thresholds=(kpi.efficiency.memory_percent / 100.0,),
                ),
                Panel(
                    "GPU",
                    (
                        (q.gpu_utilization(filters=NODE_FILTER), "{{node}} busy"),
                        (q.gpu_memory_utilization(filters=NODE_FILTER), "{{node}} memory"),
                    ),
                    unit="percentunit",
                    thresholds=(kpi.efficiency.gpu_percent / 100.0,),
                ),
            ],
        ),
    ]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": "red", "value": t} for t in panel.thresholds]
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 4 if panel.kind == "stat" else 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
            for i, (expr, legend) in enumerate(panel.exprs)
        ],
    }


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }


def dashboard(fleet: Fleet) -> dict[str, Any]:
    """The dashboard as Grafana JSON (import it, or ship it in a dashboards ConfigMap)."""
    panels: list[dict[str, Any]] = []
    panel_id = 1
    y = 0
    for title, row in _panels(fleet):
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        x = 0
        height = 0
        for panel in row:
            if x + panel.width > WIDTH:
                x, y = 0, y + height
            body = _panel_json(panel, panel_id, x, y)
            panels.append(body)
            height = body["gridPos"]["h"]
            panel_id += 1
            x += panel.width
        y += height
    devices = c.ACTIVE_DEVICES.name
    return {
        "uid": f"xzctl-{fleet.metadata.name}"[:40],
        "title": f"Xiaozhi fleet {fleet.metadata.name}",
        "tags": ["xiaozhi", "xzctl"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
                _variable("region", f"label_values({devices}, {c.REGION})"),
                _variable("node", f'label_values({devices}{{{c.REGION}=~"$region"}}, {c.NODE})'),
            ]
        },
        "panels": panels,
    }
