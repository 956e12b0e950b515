"""The sandbox's pod follower (`python -m xzctl.sandbox.follower`): tells the simulator which image runs on which
node, read from the API server (pods' node, service, track and image), so the sandbox serves the metrics of what
Kubernetes really runs: a rollout through Pulumi reaches the simulator only through the cluster."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from xzctl.errors import XzctlError
from xzctl.manifests.edge_common import SERVICE_LABEL
from xzctl.manifests.k8s import NODE_LABEL, TRACK_LABEL
from xzctl.sandbox.kubernetes import API_TIMEOUT_SECONDS, api_client

FOLLOW_SECONDS = 1.0
FOLLOW_MAX_SECONDS = 7 * 86400.0  # a forgotten sandbox's follower still ends
log = logging.getLogger(__name__)


def running_images(pods: list[Any]) -> dict[tuple[str, str, str], str]:
    """(node, service, track) -> image of the Running pods xzctl made (by their labels)."""
    out: dict[tuple[str, str, str], str] = {}
    for pod in pods:
        labels = pod.metadata.labels or {}
        node, service = labels.get(NODE_LABEL), labels.get(SERVICE_LABEL)
        if not node or not service or pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
            continue
        # The main container carries the image in XIAOZHI_IMAGE (the metrics' image label); init containers do not.
        main = next(
            (c for c in pod.spec.containers if any(e.name == "XIAOZHI_IMAGE" for e in c.env or [])),
            pod.spec.containers[0],
        )
        out[(node, service, labels.get(TRACK_LABEL) or "stable")] = main.image
    return out


def deploy_actions(seen: dict[tuple[str, str, str], str], now: dict[tuple[str, str, str], str]) -> list[dict[str, Any]]:
    """Simulator `deploy` actions turning what it was told (`seen`) into what runs (`now`). A stable track that
    vanished keeps its last image (pods roll over); a canary that vanished is removed."""
    actions: list[dict[str, Any]] = [
        {"action": "deploy", "node": n, "service": s, "track": t, "image": image}
        for (n, s, t), image in sorted(now.items())
        if seen.get((n, s, t)) != image
    ]
    actions += [
        {"action": "deploy", "node": n, "service": s, "track": t, "image": None}
        for (n, s, t) in sorted(set(seen) - set(now))
        if t == "canary"
    ]
    return actions


def follow_pods(
    kubeconfig: Path, simulator_url: str, ready_file: Path | None = None, *, max_seconds: float = FOLLOW_MAX_SECONDS
) -> None:
    """Poll the pods (bounded per request) and tell the simulator every change; runs until stopped. `ready_file`
    is written after the first poll that reached both the API server and the simulator."""
    from kubernetes import client

    from xzctl.sandbox.client import SimulatorClient

    api = api_client(kubeconfig)
    core = client.CoreV1Api(api)
    sim = SimulatorClient(simulator_url)
    seen: dict[tuple[str, str, str], str] = {}
    deadline = time.monotonic() + max_seconds
    for _ in range(int(max_seconds / FOLLOW_SECONDS) + 1):
        if time.monotonic() > deadline:
            break
        try:
            pods = core.list_pod_for_all_namespaces(label_selector=NODE_LABEL, _request_timeout=API_TIMEOUT_SECONDS)
            now = running_images(pods.items)
            for action in deploy_actions(seen, now):
                sim.control(action)
                key = (action["node"], action["service"], action["track"])
                if action["image"] is None:
                    seen.pop(key, None)
                else:
                    seen[key] = action["image"]
            if ready_file is not None and not ready_file.exists():
                ready_file.write_text("ready\n", encoding="utf-8")
        except (client.ApiException, XzctlError, OSError, ValueError) as exc:
            log.warning("pod follower: %s", exc)  # the next poll retries
        time.sleep(FOLLOW_SECONDS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tell the sandbox's simulator what the API server runs.")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--simulator", required=True)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    follow_pods(args.kubeconfig, args.simulator, args.ready_file)


if __name__ == "__main__":
    main()
