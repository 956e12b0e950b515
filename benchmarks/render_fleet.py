"""Render every node document of a generated 1000-node fleet vs yaml-dumping the same documents.

Goal: rendering (jinja2 templates with YAML-safe escaping) takes at most 2x the time of `yaml.safe_dump`
on the same data. Prints medians of several runs side by side and the ratio.

    python benchmarks/render_fleet.py [--nodes 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import yaml

from xzctl.render import render_node_documents
from xzctl.spec.generate import generate_fleet_document
from xzctl.spec.load import build_fleet

GOAL = 2.0


def median_seconds(action: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    fleet = build_fleet(generate_fleet_document(args.nodes), {}, "generated")
    nodes = fleet.edge_nodes()

    def render() -> list[str]:
        return [text for n in nodes for text in render_node_documents(fleet, n).files().values()]

    rendered = render()  # also warms the template cache, as a long-running process would be
    documents = [yaml.safe_load(text) for text in rendered]

    def dump(dumper: Any) -> Callable[[], list[str]]:
        return lambda: [yaml.dump(d, Dumper=dumper, sort_keys=False, allow_unicode=True) for d in documents]

    t_render = median_seconds(render, args.runs)
    t_dump = median_seconds(dump(yaml.SafeDumper), args.runs)
    # libyaml's C emitter is the fastest dump there is; shown so the ratio is not flattered by pure Python.
    t_cdump = median_seconds(dump(yaml.CSafeDumper), args.runs) if yaml.__with_libyaml__ else None
    ratio = t_render / t_dump
    print(f"fleet: {len(nodes)} edge nodes, {len(rendered)} documents, {sum(map(len, rendered)):,} bytes")
    print(f"median of {args.runs} runs:")
    print(
        f"  render (jinja2 + YAML-safe finalize) {t_render * 1000:9.1f} ms  ({t_render / len(nodes) * 1e6:.0f} us/node)"
    )
    print(f"  yaml.safe_dump of the same documents {t_dump * 1000:9.1f} ms")
    if t_cdump is not None:
        print(
            f"  yaml CSafeDumper (libyaml)           {t_cdump * 1000:9.1f} ms  (render / libyaml {t_render / t_cdump:.2f}x)"
        )
    print(f"ratio render / dump = {ratio:.2f}x (goal <= {GOAL:.2f}x): {'met' if ratio <= GOAL else 'MISSED'}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
