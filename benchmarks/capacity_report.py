"""`capacity report` on a sandbox of 1000 edge nodes and ~150k devices: wall time and query count.

Goals:
  - <= 12 PromQL queries per report, whatever the number of edge nodes;
  - report wall time (queries, decoding, the headroom model, forecast) <= 1.5 x the time of the very
    same queries sent with curl one after the other, measured side by side (alternating runs).
Run: python benchmarks/capacity_report.py [--nodes 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from xzctl.checks import SnapshotOptions, capacity_report, take_snapshot
from xzctl.prom import PrometheusClient
from xzctl.prom.client import Deadline
from xzctl.sandbox import SimulatorClient, start_sandbox, stop_sandbox
from xzctl.spec import load_fleet

T = TypeVar("T")
GOAL_QUERIES = 12
GOAL_RATIO = 1.5
UTILIZATION = 0.97  # of each node's 150 max_devices: 145.5k active devices at 1000 nodes
SCRAPE_SECONDS = 5
WINDOW = "30s"


class RecordingClient(PrometheusClient):
    """Remembers every request's endpoint and form, so curl can replay exactly the same queries."""

    def __init__(self, url: str) -> None:
        super().__init__(url, timeout=60)
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.seconds: list[float] = []

    def _call(
        self, endpoint: str, params: dict[str, str], shared: Deadline | None, parse: Callable[[dict[str, Any], str], T]
    ) -> T:
        self.sent.append((endpoint, dict(params)))
        started = time.perf_counter()
        try:
            return super()._call(endpoint, params, shared, parse)
        finally:
            self.seconds.append(time.perf_counter() - started)


def curl_all(url: str, sent: list[tuple[str, dict[str, str]]]) -> float:
    started = time.perf_counter()
    for endpoint, params in sent:
        args = ["curl", "-sS", "--fail", "-o", "/dev/null", f"{url}/api/v1/{endpoint}"]
        for key, value in params.items():
            args += ["--data-urlencode", f"{key}={value}"]
        subprocess.run(args, check=True, timeout=120)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        started = time.perf_counter()
        info = start_sandbox(None, state, scale=args.nodes, scrape_interval_seconds=SCRAPE_SECONDS)
        try:
            fleet = load_fleet(info.fleet_path).fleet
            sim = SimulatorClient(info.simulator_url)
            for region in fleet.regions:
                sim.control({"action": "set_devices", "region": region, "utilization": UTILIZATION})
            print(
                f"sandbox: {len(fleet.edge_nodes())} edge nodes, {fleet.devices:,} devices in the spec, "
                f"up in {time.perf_counter() - started:.1f} s; waiting for a full {WINDOW} rate window"
            )
            time.sleep(40)
            options = SnapshotOptions(window=WINDOW, history_seconds=3600, scrape_interval_seconds=SCRAPE_SECONDS)
            ours, theirs = [], []
            for _ in range(args.runs):
                client = RecordingClient(info.prometheus_url)
                t = time.perf_counter()
                report = capacity_report(take_snapshot(client, fleet, options))
                ours.append(time.perf_counter() - t)
                theirs.append(curl_all(info.prometheus_url, client.sent))
                client.close()
            known = sum(1 for n in report.nodes.values() if n.devices is not None)
            print(
                f"report: status {report.status}, {known}/{len(report.nodes)} nodes with metrics, "
                f"{report.fleet.devices} active devices, headroom {report.fleet.headroom}"
            )
            slowest = sorted(zip(client.seconds, client.sent, strict=True), key=lambda x: -x[0])[:3]
            for seconds, (_, params) in slowest:
                print(f"  slowest query {seconds:.3f} s: {params['query'][:90]}")
            ratio = statistics.median(ours) / statistics.median(theirs)
            print(f"queries per report: {report.queries} (goal <= {GOAL_QUERIES}) -> "
                  f"{'met' if report.queries <= GOAL_QUERIES else 'MISSED'}")  # fmt: skip
            print(f"capacity report: median {statistics.median(ours):.3f} s ({', '.join(f'{t:.3f}' for t in ours)})")
            print(f"same queries with curl: median {statistics.median(theirs):.3f} s "
                  f"({', '.join(f'{t:.3f}' for t in theirs)})")  # fmt: skip
            print(f"ratio: {ratio:.2f} (goal <= {GOAL_RATIO}) -> {'met' if ratio <= GOAL_RATIO else 'MISSED'}")
        finally:
            stop_sandbox(state)


if __name__ == "__main__":
    main()
