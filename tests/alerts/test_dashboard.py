"""The Grafana dashboard: valid structure, templated region/node, and only contract metrics."""

from __future__ import annotations

import re

from xzctl.alerts import dashboard
from xzctl.metrics import contract as c
from xzctl.spec import Fleet

PROMQL_WORDS = {
    "sum",
    "avg",
    "max",
    "min",
    "by",
    "rate",
    "histogram_quantile",
    "clamp_min",
    "time",
    "timestamp",
    "up",
    "label_values",
    "le",
    "job",
    "region",
    "node",
    "service",
    "track",
    "result",
    "tier",
    "mode",
}


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{", expr))
    return {n for n in names if n not in PROMQL_WORDS}


def _allowed() -> set[str]:
    names = {m.name for m in c.ALL}
    names |= {f"{c.REQUEST_DURATION.name}_{s}" for s in ("bucket", "sum", "count")}
    return names | {"up"}


def test_structure_rows_ids_and_grid(example_fleet: Fleet) -> None:
    board = dashboard(example_fleet)
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Fleet overview", "Region $region", "Edge node $node"]
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"])


def test_region_and_node_are_templated_and_used(example_fleet: Fleet) -> None:
    board = dashboard(example_fleet)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert set(variables) == {"datasource", "region", "node"}
    assert "$region" in variables["node"]["definition"]
    exprs = [t["expr"] for p in board["panels"] if p["type"] != "row" for t in p["targets"]]
    assert any('node=~"$node"' in e for e in exprs) and any('region=~"$region"' in e for e in exprs)


def test_every_queried_metric_is_in_the_contract(example_fleet: Fleet) -> None:
    board = dashboard(example_fleet)
    exprs = [t["expr"] for p in board["panels"] if p["type"] != "row" for t in p["targets"]]
    exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
    used = set().union(*(_metric_names(e) for e in exprs))
    assert used and used <= _allowed(), used - _allowed()
    assert {c.ACTIVE_DEVICES.name, c.GPU_UTIL.name, c.NODE_CPU_SECONDS.name} <= used
