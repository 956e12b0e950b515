"""What `xzctl sandbox up` and `status` say about a running sandbox: its summary document and its lines."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from xzctl.sandbox import SandboxInfo


def summary(info: SandboxInfo, verdicts: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "prometheus_url": info.prometheus_url,
        "simulator_url": info.simulator_url,
        "edge_nodes": info.nodes,
        "fleet": info.fleet_path,
        "seed": info.seed,
        "scrape_interval_seconds": info.scrape_interval_seconds,
        "history": info.history,
        "real_node": info.real_node,
        "kubeconfig": info.kubeconfig or None,
        "global_url": info.global_url or None,
        "regions": info.regions,
        "pids": info.pids,
        "running": info.alive(),
        **({"verdicts": verdicts} if verdicts else {}),
    }


def print_summary(console: Console, data: dict[str, Any]) -> None:
    if data["global_url"]:
        console.print(
            f"Global      [bold]{escape(data['global_url'])}[/]  (Thanos Query over {len(data['regions'])} "
            "regions' Prometheus; commands read it)"
        )
    else:
        console.print(
            f"Prometheus  [bold]{escape(data['prometheus_url'])}[/]  (alerts: {escape(data['prometheus_url'])}/alerts)"
        )
    console.print(
        f"Simulator   {escape(data['simulator_url'])}  ({data['edge_nodes']} edge nodes, seed {data['seed']})"
    )
    console.print(f"Fleet       {escape(data['fleet'])}", soft_wrap=True)  # a path to copy: never split
    if data["kubeconfig"]:
        console.print(f"Kubernetes  export KUBECONFIG={escape(data['kubeconfig'])}  (fake nodes: kwok)", soft_wrap=True)
    xiaozhi = (data["real_node"] or {}).get("xiaozhi")
    if xiaozhi:
        processes = data["real_node"].get("server_processes", 1)
        console.print(
            f"Xiaozhi     {escape(xiaozhi['websocket_url'])}  (OTA {escape(xiaozhi['ota_url'])}; "
            f"{processes} server process{'es' if processes > 1 else ''} behind a balancer)",
            soft_wrap=True,
        )
    if data["history"]:
        h = data["history"]
        console.print(
            f"History     {h['samples']:,} samples backfilled, one every {h['step_seconds']} s "
            f"(rates over it need windows of {2 * h['step_seconds'] // 60}m or more; live checks read live scrapes)"
        )
    if "verdicts" in data:
        v = data["verdicts"]
        when = "now" if v["ready"] else f"from {time.strftime('%H:%M:%S', time.localtime(v['from']))} (not yet)"
        console.print(f"Verdicts    trustworthy {when}: every edge node scraped {v['scrapes']} times since the start")
