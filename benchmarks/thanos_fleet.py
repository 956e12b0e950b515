"""700 edge nodes in 14 regions, each region's own Prometheus behind Thanos Query (`sandbox up --per-region-prometheus`):
`capacity report`, `check all` and `check failover` against the same PromQL sent with curl, and Prometheus memory.

Goals (issue 26):
  - each command answers (exit 0 or 1, not 3 unknown) in every run, on a busy host;
  - each command's wall time (the CLI in this process: queries, decoding, the models, rendering) <= 2 x the time of
    the very queries it sent, replayed with curl to the global endpoint at the same concurrency (16 at once);
  - Prometheus memory per region, not per fleet (RSS of each region's Prometheus after the runs).
Needs thanos (bash scripts/engine.sh thanos). Run: python benchmarks/thanos_fleet.py [--nodes 700] [--runs 3] [--output table|json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from xzctl.cli import run
from xzctl.prom.client import Deadline, PrometheusClient
from xzctl.sandbox import SimulatorClient, start_sandbox, stop_sandbox
from xzctl.sandbox.ready import live_span, wait_scraped
from xzctl.spec import load_fleet

T = TypeVar("T")
GOAL_RATIO = 2.0
UTILIZATION = 0.9
SCRAPE_SECONDS = 5
WINDOW = "30s"
CURL_PARALLEL = 16  # as many at once as the CLI sends at most (4 regions x 4 queries)
COMMANDS = {
    "capacity report": ["capacity", "report"],
    "check all": ["check", "all"],
    "check failover": ["check", "failover"],
}
SENT: list[tuple[str, dict[str, str]]] = []


def _recording(original: Callable[..., Any]) -> Callable[..., Any]:
    """The client's `_call`, remembering every query's endpoint and form so curl can replay exactly them."""

    def call(
        self: PrometheusClient,
        endpoint: str,
        params: dict[str, str],
        shared: Deadline | None,
        parse: Callable[[dict[str, Any], str], T],
    ) -> T:
        SENT.append((endpoint, {**params, "partial_response": "false"}))
        result: T = original(self, endpoint, params, shared, parse)
        return result

    return call


def curl_replay(url: str, sent: list[tuple[str, dict[str, str]]], work: Path) -> float:
    """Send the recorded queries with one curl, CURL_PARALLEL at a time; seconds until all answered."""
    config = work / "curl.cfg"
    config.write_text(
        "".join(
            f'url = "{url}/api/v1/{endpoint}?{urlencode(params)}"\noutput = "/dev/null"\n' for endpoint, params in sent
        )
    )
    started = time.perf_counter()
    subprocess.run(
        [
            "curl",
            "-sS",
            "--no-progress-meter",
            "--fail",
            "--parallel",
            "--parallel-max",
            str(CURL_PARALLEL),
            "--config",
            str(config),
        ],
        check=True,
        timeout=300,
    )
    return time.perf_counter() - started


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=700)
    parser.add_argument("--runs", type=int, default=3)
    # json: the same without table rendering (a 700-row table is most of `capacity report`'s time on a busy host)
    parser.add_argument("--output", choices=["table", "json"], default="table")
    args = parser.parse_args()
    PrometheusClient._call = _recording(PrometheusClient._call)  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        started = time.perf_counter()
        info = start_sandbox(
            None, state, scale=args.nodes, scrape_interval_seconds=SCRAPE_SECONDS, per_region_prometheus=True
        )
        try:
            fleet = load_fleet(info.fleet_path).fleet
            sim = SimulatorClient(info.simulator_url)
            for region in fleet.regions:
                sim.control({"action": "set_devices", "region": region, "utilization": UTILIZATION})
            print(
                f"sandbox: {len(fleet.edge_nodes())} edge nodes in {len(info.regions)} regions, each its own "
                f"Prometheus + sidecar, Thanos Query {info.global_url}; up in {time.perf_counter() - started:.0f} s"
            )
            wait_scraped(info, 3, timeout=180)
            with PrometheusClient(info.global_url, timeout=30) as client:
                for _ in range(120):  # until a full rate window of live samples (bounded: 120 x 2 s)
                    if live_span(client, info) >= 2 * int(WINDOW.removesuffix("s")):
                        break
                    time.sleep(2)
            times: dict[str, list[float]] = {name: [] for name in COMMANDS}
            curl: dict[str, list[float]] = {name: [] for name in COMMANDS}
            codes: dict[str, list[int]] = {name: [] for name in COMMANDS}
            queries: dict[str, int] = {}
            for _ in range(args.runs):
                for name, argv in COMMANDS.items():
                    SENT.clear()
                    out = io.StringIO()
                    t = time.perf_counter()
                    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                        code = run([*argv, "--state-dir", str(state), "--window", WINDOW, "-o", args.output])
                    times[name].append(time.perf_counter() - t)
                    codes[name].append(code)
                    queries[name] = len(SENT)
                    curl[name].append(curl_replay(info.global_url, list(SENT), Path(tmp)))
            load = os.getloadavg()
            print(
                f"load average during the runs: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (2 cores); -o {args.output}"
            )
            for name in COMMANDS:
                answered = sum(1 for c in codes[name] if c in (0, 1))
                ratio = statistics.median(times[name]) / statistics.median(curl[name])
                print(
                    f"{name}: answered {answered}/{args.runs} (exit {codes[name]}), {queries[name]} queries; median "
                    f"{statistics.median(times[name]):.2f} s vs curl {statistics.median(curl[name]):.2f} s -> ratio "
                    f"{ratio:.2f} (goal <= {GOAL_RATIO}) {'met' if ratio <= GOAL_RATIO and answered == args.runs else 'MISSED'}"
                )
            per_region = {r: rss_mb(info.pids[f"prometheus-{r}"]) for r in info.regions}
            sidecars = [rss_mb(info.pids[f"sidecar-{r}"]) for r in info.regions]
            print(
                f"Prometheus RSS per region ({len(per_region)}): min {min(per_region.values()):.0f} MB, median "
                f"{statistics.median(per_region.values()):.0f} MB, max {max(per_region.values()):.0f} MB; "
                f"sum {sum(per_region.values()):.0f} MB; sidecars median {statistics.median(sidecars):.0f} MB; "
                f"Thanos Query {rss_mb(info.pids['thanos-query']):.0f} MB"
            )
        finally:
            stop_sandbox(state)


if __name__ == "__main__":
    main()
