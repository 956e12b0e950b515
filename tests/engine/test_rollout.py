"""`xzctl rollout canary --deployer pulumi` on the session cluster (tier `engine`): the closed loop.

Pulumi updates the region stack -> the canary Deployment's pods run on the canary node -> the pod follower tells
the simulator -> Prometheus -> analysis -> promote or roll back through Pulumi again. The images on each node are
read from the API server (pods' node and image) before, during the canary and after; a bad image is bad only in
the simulator's image profile, so its metrics reach the analysis only if the cluster really runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.engine import Engine
from xzctl.manifests.edge_common import SERVICE_LABEL
from xzctl.manifests.k8s import TRACK_LABEL
from xzctl.sandbox import SimulatorClient

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1800)]
REGION = "beijing"
NODES = ("bj-edge-01", "bj-edge-02")  # two steps: the canary node, then the rest of the rollout
GOOD = "registry.xiaozhi.example/inference/asr:1.4.0"
BAD = "registry.xiaozhi.example/inference/asr:1.4.1"
ROLLOUT_SECONDS = 900.0
Images = dict[tuple[str, str], set[str]]  # (node, track) -> images of the running asr pods


@pytest.fixture(scope="module")
def beijing(engine: Engine) -> Engine:
    """The region up (a no-op when an earlier module brought it up) and peak load: at the trough a 10% canary
    serves so few requests that one counter step of the simulator reads as an error ratio above the KPI."""
    # No --fleet and no --kubeconfig: the running sandbox's spec (examples/fleet-sandbox.yaml) and its cluster.
    assert engine.xzctl("provision", "cloud", "--yes", "-o", "json", fleet=False) == 0
    assert engine.xzctl("provision", "region", REGION, "--yes", "-o", "json", fleet=False) == 0
    SimulatorClient(engine.sandbox.simulator_url).control(
        {"action": "set_devices", "region": REGION, "utilization": 0.95}
    )
    return engine


def asr_images(engine: Engine) -> Images:
    """What the API server says runs: the node and image (the pinned reference) of every running asr pod, by
    track."""
    from kubernetes import client

    from xzctl.sandbox.kubernetes import api_client

    api = api_client(engine.kubeconfig)
    try:
        pods = client.CoreV1Api(api).list_pod_for_all_namespaces(
            label_selector=f"{SERVICE_LABEL}=asr", _request_timeout=10
        )
    finally:
        api.close()
    out: Images = {}
    for pod in pods.items:
        if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp and pod.spec.node_name:
            track = (pod.metadata.labels or {}).get(TRACK_LABEL, "stable")
            # pods pull by the lock's digest: compared by the reference they were pinned from
            pulled = [c.image for c in pod.spec.containers]
            assert all("@sha256:" in image for image in pulled), pulled
            out.setdefault((pod.spec.node_name, track), set()).update(image.split("@")[0] for image in pulled)
    return out


def rollout(engine: Engine, image: str, seen: Callable[[Images], bool]) -> tuple[int, dict[str, Any], Images | None]:
    """A canary of `image` on NODES through Pulumi, as `run_rollout` runs it."""
    argv = ["canary", "asr", image, "--deployer", "pulumi", *[arg for node in NODES for arg in ("--node", node)]]
    argv += ["--interval", "2s", "--checks", "2", "--warmup", "2s"]  # the fleet the sandbox runs, not repeated
    return run_rollout(engine, argv, seen)


def run_rollout(
    engine: Engine, args: list[str], seen: Callable[[Images], bool]
) -> tuple[int, dict[str, Any], Images | None]:
    """Run `xzctl rollout ARGS` in a subprocess (as an operator would), polling the API server meanwhile: its exit
    code, its final state (JSON) and the first snapshot `seen` accepted (None: never seen)."""
    argv = [sys.executable, "-m", "xzctl", "rollout", *args, "-o", "json", "--state-dir", str(engine.state)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    snapshot = None
    deadline = time.monotonic() + ROLLOUT_SECONDS
    try:
        for _ in range(int(ROLLOUT_SECONDS / 0.5)):  # bounded: until the rollout ends
            if snapshot is None and seen(now := asr_images(engine)):
                snapshot = now
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert out.strip(), err.decode(errors="replace")[-2000:]
    return proc.returncode, json.loads(out), snapshot


def settled(engine: Engine, want: Images) -> Images:
    """The API server's asr images once they are `want` (pods the update deleted may take a moment), or the last."""
    images: Images = {}
    deadline = time.monotonic() + 60
    for _ in range(600):
        images = asr_images(engine)
        if images == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return images


def stable_and_canary(images: Images, node: str) -> tuple[set[str], set[str]]:
    return images.get((node, "stable"), set()), images.get((node, "canary"), set())


def wait_simulator(engine: Engine, node: str, want: dict[str, str | None]) -> dict[str, Any]:
    """The simulator's asr images on `node` once they are `want` (the follower polls every second), or the last."""
    sim = SimulatorClient(engine.sandbox.simulator_url)
    images: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    for _ in range(600):
        images = sim.state()["nodes"][node]["images"]["asr"]
        if images == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return images


def assert_stack_is_a_no_op(engine: Engine, tmp: Path) -> None:
    """The stack holds what the rollout left: a preview with the pins it last applied changes nothing."""
    from xzctl.provision.backend import stack_pins
    from xzctl.spec import load_fleet

    pins = stack_pins(load_fleet(engine.fleet).fleet, [REGION], engine.state)
    path = tmp / "pins.json"
    path.write_text(json.dumps(pins.to_json()), encoding="utf-8")
    code, preview = engine.xzctl_json("provision", "region", REGION, "--preview", "--pins", str(path))
    assert code == 0 and set(preview["changes"]) == {"same"}, preview["changes"]


def test_a_good_image_is_promoted_through_pulumi(beijing: Engine, tmp_path: Path) -> None:
    engine = beijing
    before = asr_images(engine)
    old = {node: stable_and_canary(before, node)[0] for node in NODES}
    assert all(len(images) == 1 and GOOD not in images for images in old.values()), before
    assert not any(track == "canary" for _, track in before)

    code, final, during = rollout(engine, GOOD, lambda now: stable_and_canary(now, NODES[0])[1] == {GOOD})
    assert (code, final["phase"]) == (0, "promoted"), final["reason"]
    assert during is not None, "the canary pod never ran on the canary node"
    assert stable_and_canary(during, NODES[0])[0] == old[NODES[0]]  # beside the stable, not instead of it

    # The rollout's nodes run the new image, no canary anywhere; every other node as it was.
    promoted = {k: v for k, v in before.items() if k[0] not in NODES} | {(node, "stable"): {GOOD} for node in NODES}
    assert settled(engine, promoted) == promoted
    assert wait_simulator(engine, NODES[0], {"stable": GOOD, "canary": None}) == {"stable": GOOD, "canary": None}
    assert_stack_is_a_no_op(engine, tmp_path)


def test_a_bad_image_is_rolled_back_through_pulumi(beijing: Engine, tmp_path: Path) -> None:
    engine = beijing
    # Bad only in the simulator's profile: its metrics show only if the follower saw the image on a node.
    SimulatorClient(engine.sandbox.simulator_url).control({"action": "image_profile", "image": BAD, "error_rate": 0.05})
    before = asr_images(engine)
    assert not any(track == "canary" for _, track in before)

    code, final, during = rollout(engine, BAD, lambda now: stable_and_canary(now, NODES[0])[1] == {BAD})
    assert (code, final["phase"], final["cause"]) == (1, "rolled_back", "analysis_failed"), final["reason"]
    assert "error ratio canary" in final["reason"]
    assert during is not None, "the canary pod never ran on the canary node"
    assert settled(engine, before) == before  # the canary gone, every stable as it was
    stable = next(iter(stable_and_canary(before, NODES[0])[0]))
    assert wait_simulator(engine, NODES[0], {"stable": stable, "canary": None}) == {"stable": stable, "canary": None}
    assert_stack_is_a_no_op(engine, tmp_path)


def test_undo_returns_the_release_before_through_pulumi(beijing: Engine, tmp_path: Path) -> None:
    """After the good image's promotion (and the bad one's rollback), `rollout undo asr` rolls the release it
    replaced back out on the same nodes: a canary through Pulumi again, with the settings it recorded."""
    engine = beijing
    before = asr_images(engine)
    assert all(stable_and_canary(before, node) == ({GOOD}, set()) for node in NODES), before
    previous = {image for (node, _), images in before.items() if node not in NODES for image in images}
    assert len(previous) == 1 and GOOD not in previous, before  # the rest of the region kept the spec's release
    [old] = previous

    code, final, during = run_rollout(engine, ["undo", "asr"], lambda now: stable_and_canary(now, NODES[0])[1] == {old})
    assert (code, final["phase"], final["image"]) == (0, "promoted", old), final["reason"]
    assert during is not None and stable_and_canary(during, NODES[0])[0] == {GOOD}, "no canary of the old release"
    assert [s["nodes"] for s in final["steps"]] == [[NODES[0]], [NODES[1]]]
    restored = before | {(node, "stable"): {old} for node in NODES}
    assert settled(engine, restored) == restored
    assert_stack_is_a_no_op(engine, tmp_path)
