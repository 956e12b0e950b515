"""`sandbox up --per-region-prometheus` for real: each region's Prometheus scrapes only its own edge nodes, Thanos
Query answers for all of them (backfilled history included), checks read through it, and a region whose sidecar is
gone is unknown while the others keep their verdicts."""

from __future__ import annotations

import time

import pytest

from tests.fixtures.thanos import THANOS_GROUP
from xzctl.checks import SnapshotOptions, Status, capacity_report, take_snapshot
from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient
from xzctl.sandbox import SandboxInfo, current_prometheus_url
from xzctl.sandbox.processes import stop_group
from xzctl.sandbox.ready import wait_scraped
from xzctl.spec import load_fleet

pytestmark = [pytest.mark.engine, pytest.mark.xdist_group(THANOS_GROUP)]


def test_regions_behind_one_global_view(thanos_sandbox: SandboxInfo) -> None:
    box = thanos_sandbox
    fleet = load_fleet(box.fleet_path).fleet
    nodes = {r: {n.id for n in fleet.edge_nodes() if n.region == r} for r in fleet.regions}
    assert box.global_url and box.prometheus_url == box.global_url
    assert current_prometheus_url(box.state_dir) == box.global_url  # what commands read by default
    assert set(box.regions) == set(fleet.regions)
    assert wait_scraped(box, 3, timeout=60)
    for region, stack in box.regions.items():
        with PrometheusClient(stack["prometheus_url"]) as own:
            assert {s.labels["node"] for s in own.query(q.node_up())} == nodes[region]
    # The global view: every node live, and each region's backfill before the live samples.
    with PrometheusClient(box.global_url, timeout=30) as client:
        assert {s.labels["node"] for s in client.query(q.node_up())} == set().union(*nodes.values())
        an_hour_ago = time.time() - 3600
        past = client.query(q.active_devices(by=("region",)), at=an_hour_ago)
        assert {s.labels["region"] for s in past} == set(fleet.regions)
        options = SnapshotOptions(window="5s", history_seconds=0, scrape_interval_seconds=1)
        report = capacity_report(take_snapshot(client, fleet, options))
        assert all(r.status is not Status.UNKNOWN for r in report.regions.values()), report.summary()
        assert report.queries == 11 * len(fleet.regions)

        lost = "shanghai"
        stop_group(box.pids[f"sidecar-{lost}"], box.start_times[f"sidecar-{lost}"])
        # Gone at once: until Query's next health round the store fails its queries (no partial answers), after
        # it no store matches the region; unknown either way.
        report = capacity_report(take_snapshot(client, fleet, options))
    assert report.regions[lost].status is Status.UNKNOWN
    assert all(r.status is not Status.UNKNOWN for name, r in report.regions.items() if name != lost)
