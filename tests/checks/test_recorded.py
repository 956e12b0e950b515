"""At the recorded window a snapshot reads the recorded series (the sandbox's Prometheus runs the fleet's rules),
and from a Prometheus without the rules it reads the same figures raw, in a second round."""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.fixtures.prometheus import bare_prometheus
from tests.fixtures.sandbox import equals, wait_for_query
from xzctl.checks import SnapshotOptions
from xzctl.checks.snapshot import FleetSnapshot, expected_services, take_snapshot
from xzctl.metrics import queries as q
from xzctl.metrics import recorded
from xzctl.prom import PrometheusClient
from xzctl.sandbox import SandboxInfo
from xzctl.sandbox.prometheus import scrape_config
from xzctl.spec import Fleet

pytestmark = pytest.mark.live

OPTIONS = SnapshotOptions(window=recorded.RECORDED_WINDOW, history_seconds=0, scrape_interval_seconds=1)
PLAIN_QUERIES = 7  # up, age, devices, memory, GPU, queue, frozen counters (no history range query here)
FIGURES = 4  # p95 latency, error ratio, cache hit ratio, CPU


def _figures_known(snapshot: FleetSnapshot, fleet: Fleet) -> None:
    for node in fleet.edge_nodes():
        m = snapshot.nodes[node.id]
        values = [m.cpu, m.error_ratio, m.cache_hit]
        assert all(v is not None and math.isfinite(v) for v in values), m
        assert set(expected_services(node)) <= set(m.latency_p95), m.latency_p95


def test_the_recorded_window_reads_one_precomputed_series_per_figure(
    sandbox: SandboxInfo, example_fleet: Fleet
) -> None:
    nodes = len(example_fleet.edge_nodes())
    for name in recorded.NODE_SERIES:  # evaluated once a scrape interval: wait for an evaluation with every node
        wait_for_query(sandbox.prometheus_url, f"count(count by (node) ({name}))", equals(nodes))
    with PrometheusClient(sandbox.prometheus_url) as client:
        snapshot = take_snapshot(client, example_fleet, OPTIONS)
        raw_cpu = {s.labels["node"]: s.value for s in client.query(q.node_figures(OPTIONS.window)["cpu_utilization"])}
    assert snapshot.queries == len(example_fleet.regions) * (PLAIN_QUERIES + FIGURES)  # per region, all recorded
    _figures_known(snapshot, example_fleet)
    # the recorded CPU is the raw expression of an evaluation at most a few seconds earlier, over the same 5m
    for node, busy in raw_cpu.items():
        cpu = snapshot.nodes[node].cpu
        assert cpu is not None and abs(cpu - busy) < 0.1, (node, cpu, busy)


def test_a_prometheus_without_the_rules_gives_the_same_figures_read_raw(
    sandbox: SandboxInfo, example_fleet: Fleet, tmp_path: Path
) -> None:
    port = urlsplit(sandbox.simulator_url).port
    assert port is not None
    edge = scrape_config(example_fleet, port, 1)["scrape_configs"]  # the sandbox's targets, no rule file
    extra = "".join(f"  {line}\n" for line in yaml.safe_dump(edge, sort_keys=False).splitlines())
    with bare_prometheus(tmp_path, extra) as url:
        wait_for_query(url, "min(count_over_time(up{job='xiaozhi-edge'}[1m])) >= 3", bool)
        with PrometheusClient(url) as client:
            snapshot = take_snapshot(client, example_fleet, OPTIONS)
    assert snapshot.queries == len(example_fleet.regions) * (
        PLAIN_QUERIES + 2 * FIGURES
    )  # per region: 4 raw reads after empty recorded ones
    _figures_known(snapshot, example_fleet)
