"""Names of the recorded series: the per-node figures the live checks read, precomputed by recording rules.

Each Prometheus (one per region, or the one a site has) evaluates the rules rendered with the alert rules
(xzctl.alerts.rules) at its evaluation interval, so a check at 10,000 nodes reads one series per node and figure
instead of expanding every histogram bucket and counter within its deadline. Names follow Prometheus'
level:metric:operations and are built from the metrics contract; the window is part of the name. Kept beside the
contract rather than in it: contract.py is an input of the inference images, and recorded names are not
something an image emits.
"""

from __future__ import annotations

from xzctl.metrics import contract as c

RECORDED_WINDOW = "5m"  # the checks' default rate window (xzctl.checks.window); another window reads raw series


def recorded_name(level: str, metric: c.Metric, operation: str) -> str:
    return f"{level}:{metric.name.removesuffix('_total')}:{operation}_rate{RECORDED_WINDOW}"


NODE_P95 = recorded_name("node_service", c.REQUEST_DURATION, "p95")
NODE_ERROR_RATIO = recorded_name("node", c.REQUESTS, "error_ratio")
NODE_CACHE_HIT = recorded_name("node", c.CACHE_REQUESTS, "hit_ratio")
NODE_CPU = recorded_name("node", c.NODE_CPU_SECONDS, "busy_ratio")
NODE_SERIES = (NODE_P95, NODE_ERROR_RATIO, NODE_CACHE_HIT, NODE_CPU)
