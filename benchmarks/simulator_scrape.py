"""Simulator at 1000 edge nodes and ~150k devices: scrape payload size and time for every node endpoint.

Goals (this 2-core machine, Prometheus' default 10 s scrape interval):
  - one full scrape cycle of all 1000 node endpoints in under 5 s (half the scrape interval),
    fetched 8 at a time as Prometheus does concurrently;
  - payload under 20 MB per cycle (20 KB per node);
  - simulator memory (RSS) under 500 MB.
Run: python benchmarks/simulator_scrape.py [--nodes 1000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import yaml

from xzctl.spec.generate import generate_fleet_document

GOAL_CYCLE_SECONDS = 5.0
GOAL_BYTES_PER_NODE = 20_000
GOAL_RSS_MB = 500.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    doc = generate_fleet_document(args.nodes, devices_per_node=150, device_jitter=0)  # 1000 x 150 = 150k devices
    devices = sum(n["devices"] for r in doc["regions"].values() for n in r["edge_nodes"])
    nodes = [n["id"] for r in doc["regions"].values() for n in r["edge_nodes"]]
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Path(tmp) / "fleet.yaml"
        fleet.write_text(yaml.safe_dump(doc))
        ready = Path(tmp) / "port"
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "xzctl.simulator", "--fleet", str(fleet), "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(600):
                if ready.exists() or proc.poll() is not None:
                    break
                time.sleep(0.1)
            url = f"http://127.0.0.1:{ready.read_text()}"
            print(
                f"simulator: {len(nodes)} edge nodes, {devices:,} devices, up in {time.perf_counter() - started:.1f} s"
            )
            session = requests.Session()
            session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))

            def fetch(node: str) -> tuple[int, float]:
                t = time.perf_counter()
                body = session.get(f"{url}/nodes/{node}/metrics", timeout=30).content
                return len(body), time.perf_counter() - t

            for cycle in range(1, args.cycles + 1):
                t = time.perf_counter()
                with ThreadPoolExecutor(8) as pool:
                    results = list(pool.map(fetch, nodes))
                elapsed = time.perf_counter() - t
                total = sum(size for size, _ in results)
                latencies = sorted(lat for _, lat in results)
                print(
                    f"cycle {cycle}: {elapsed:.2f} s for {len(nodes)} endpoints (goal < {GOAL_CYCLE_SECONDS:.0f} s), "
                    f"{total / 1e6:.1f} MB ({total / len(nodes) / 1000:.1f} KB/node, goal < {GOAL_BYTES_PER_NODE / 1000:.0f} KB), "
                    f"per endpoint p50 {statistics.median(latencies) * 1000:.0f} ms "
                    f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms"
                )
                time.sleep(2)  # counters advance between cycles, as between real scrapes
            print(f"simulator RSS: {rss_mb(proc.pid):.0f} MB (goal < {GOAL_RSS_MB:.0f} MB)")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
