"""Failover simulation of every single-node and single-region loss at 1000 edge nodes.

Goal: the whole simulation (1000 node losses + every region loss, 150 k devices) in <= 1 s.
The inputs are the generated 1000-node fleet with seeded loads around 80-97 % of max_devices, so
region losses do overflow and every phase of the placement (within KPIs, past them, dropped) runs.
Run: python benchmarks/failover_sim.py [--nodes 1000] [--repeat 5] [--load 0.95 1.0]
"""

from __future__ import annotations

import argparse
import random
import statistics

from xzctl.checks.failover import simulate_all
from xzctl.spec.failover import NodeLoad
from xzctl.spec.generate import generate_fleet_document
from xzctl.spec.load import build_fleet

GOAL_SECONDS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--load", type=float, nargs=2, default=(0.8, 0.97), help="share of max_devices per node")
    args = parser.parse_args()
    fleet = build_fleet(generate_fleet_document(args.nodes, devices_per_node=150), {}, "generated")
    rng = random.Random(0)
    w = fleet.load_balancer.weights
    loads = []
    for node in fleet.edge_nodes():
        max_devices = node.capacity.max_devices
        devices = round(max_devices * rng.uniform(*args.load))
        cpu, memory, gpu = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.6), rng.uniform(0.75, 0.95)
        score = w.cpu * (1 - cpu) + w.memory * (1 - memory) + w.gpu * (1 - gpu) + w.latency * 0.5 + w.queue * 0.9
        per_device = (w.cpu * cpu + w.memory * memory + w.gpu * gpu + w.latency * 0.5 + w.queue * 0.1) / devices
        kpi_capacity = min(max_devices, round(devices * 0.9 / gpu))
        loads.append(NodeLoad(node.id, node.region, devices, kpi_capacity, max_devices, score, per_device, "gpu"))
    cross = {name: r.cross_region_failover for name, r in fleet.regions.items()}
    times = []
    for _ in range(args.repeat):
        report = simulate_all(loads, cross)
        times.append(report.seconds)
    outcomes: dict[str, int] = {}
    for f in report.failures:
        outcomes[f"{f.kind} {f.outcome}"] = outcomes.get(f"{f.kind} {f.outcome}", 0) + 1
    best, median = min(times), statistics.median(times)
    print(f"edge nodes: {len(loads)}, regions: {len(fleet.regions)}, devices: {sum(n.devices for n in loads)}")
    print(f"failures simulated: {len(report.failures)}  outcomes: {dict(sorted(outcomes.items()))}")
    print(f"simulation time: best {best:.3f} s, median {median:.3f} s over {args.repeat} runs")
    print(f"goal: <= {GOAL_SECONDS:.1f} s -> {'met' if median <= GOAL_SECONDS else 'MISSED'}")


if __name__ == "__main__":
    main()
