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
from xzctl.manifests.edge_common import IMAGE_ENV, SERVICE_LABEL
from xzctl.manifests.k8s import NODE_LABEL, TRACK_LABEL
from xzctl.sandbox.kubernetes import API_TIMEOUT_SECONDS, api_client

FOLLOW_SECONDS = 1.0
FOLLOW_MAX_SECONDS = 7 * 86400.0  # a forgotten sandbox's follower still ends
log = logging.getLogger(__name__)


def running_images(pods: list[Any]) -> dict[tuple[str, str, str], str]:
    """(node, service, track) -> image of the Running pods xzctl made (by their labels). While a Deployment rolls
    over, old and new pods both run: the newest pod's image is what the track is becoming, so it wins."""
    out: dict[tuple[str, str, str], str] = {}
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp):
        labels = pod.metadata.labels or {}
        node, service = labels.get(NODE_LABEL), labels.get(SERVICE_LABEL)
        if not node or not service or pod.status.phase != "Running" or pod.metadata.deletion_timestamp:
            continue
        # The main container carries the pinned reference in XZ_IMAGE (the metrics' image label; its `image` is
        # that reference by digest); init containers do not.
        named = (e.value for c in pod.spec.containers for e in c.env or [] if e.name == IMAGE_ENV and e.value)
        out[(node, service, labels.get(TRACK_LABEL) or "stable")] = next(named, pod.spec.containers[0].image)
    return out


def modelled_services(state: dict[str, Any]) -> set[tuple[str, str]]:
    """(node, service) pairs the simulator serves metrics for, from its /state."""
    return {(node, service) for node, data in state.get("nodes", {}).items() for service in data.get("images", {})}


def deploy_actions(
    seen: dict[tuple[str, str, str], str], now: dict[tuple[str, str, str], str], modelled: set[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Simulator `deploy` actions turning what it was told (`seen`) into what runs (`now`). A stable track that
    vanished keeps its last image (pods roll over); a canary that vanished is removed. Pods the simulator does not
    model (the Redis cache, another fleet's nodes) are left out: it would refuse them."""
    now = {key: image for key, image in now.items() if key[:2] in modelled}
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
    import urllib3
    from kubernetes import client

    from xzctl.sandbox.client import SimulatorClient

    api = api_client(kubeconfig)
    core = client.CoreV1Api(api)
    sim = SimulatorClient(simulator_url)
    seen: dict[tuple[str, str, str], str] = {}
    modelled: set[tuple[str, str]] = set()
    deadline = time.monotonic() + max_seconds
    for _ in range(int(max_seconds / FOLLOW_SECONDS) + 1):
        if time.monotonic() > deadline:
            break
        try:
            modelled = modelled or modelled_services(sim.state())  # the simulator's nodes never change
            pods = core.list_pod_for_all_namespaces(label_selector=NODE_LABEL, _request_timeout=API_TIMEOUT_SECONDS)
            tell(sim, deploy_actions(seen, running_images(pods.items), modelled), seen)
            if ready_file is not None and not ready_file.exists():
                ready_file.write_text("ready\n", encoding="utf-8")
        # urllib3's errors are not OSErrors: an API server restarting (connection refused) must not end the follower
        except (client.ApiException, urllib3.exceptions.HTTPError, XzctlError, OSError, ValueError) as exc:
            log.warning("pod follower: %s", exc)  # the next poll retries
        time.sleep(FOLLOW_SECONDS)


def tell(sim: Any, actions: list[dict[str, Any]], seen: dict[tuple[str, str, str], str]) -> None:
    """Send each deploy action, recording in `seen` what the simulator took. A refusal is logged and retried at
    the next poll, never blocking the actions after it (a canary's removal comes last)."""
    for action in actions:
        key = (action["node"], action["service"], action["track"])
        try:
            sim.control(action)
        except XzctlError as exc:
            log.warning("pod follower: %s", exc)
            continue
        if action["image"] is None:
            seen.pop(key, None)
        else:
            seen[key] = action["image"]


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
