"""Region up through the real Pulumi engine vs the same objects applied with the kubernetes Python client.

Needs the engine (bash scripts/engine.sh). Starts a sandbox with its local Kubernetes, provisions the cloud, then
times `xzctl.provision.up` of one region (goal: <= 1.5x the client baseline, which applies the same rendered objects
in a fresh sandbox and waits for the same readiness: Deployments available and rolled out, StatefulSets rolled out,
ready endpoints behind each Service, claims bound, jobs complete, ingress address), and the no-op up that follows
(goal <= 5 s, median of 5), then a rollout step through Pulumi: the update that adds a canary on the region's first
node until its pod runs there per the API server (median of 5). Prints the figures; asserts nothing.

With --all-regions: `provision region --all` (every region of the fleet, --parallel at once, each in its own process)
against the slowest region provisioned alone (the same regions one at a time, in a fresh sandbox); goal: the whole
fleet within 1.5x the slowest single region. --regions N clones the example's regions up to N (each its own
namespace on the sandbox's one cluster, which makes a volume for every claim of the cloned fleet).

    python benchmarks/engine_provision.py [--region beijing]
    python benchmarks/engine_provision.py --all-regions [--regions 3] [--parallel 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# The engine tier's spec (examples/fleet-sandbox.yaml) and stand-in secrets are the benchmark's too:
# `python benchmarks/...` from the checkout puts benchmarks/ on the path, not the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fixtures.engine import SECRETS, sandbox_example
from xzctl.manifests.k8s import NODE_LABEL, TRACK_LABEL
from xzctl.manifests.pins import ServicePin, spec_pins
from xzctl.provision import up
from xzctl.provision.objects import target_objects
from xzctl.sandbox import start_sandbox, stop_sandbox
from xzctl.sandbox.kubernetes import api_client, engine_bin_dir
from xzctl.spec import load_fleet

RATIO_GOAL = 1.5
NOOP_GOAL_SECONDS = 5.0
READY_TIMEOUT_SECONDS = 900.0
ROLLOUT_STEPS = 5
NOOP_RUNS = 5  # one no-op up varied 4.4-5.7 s on a quiet machine


def _ready(obj: dict[str, Any], live: dict[str, Any], endpoints: Any) -> bool:
    """What pulumi-kubernetes awaits for `obj` (its live state `live`), plus ready endpoints behind a Service with a
    selector (`endpoints(name)`: its live Endpoints), which the Deployments' awaits imply on the Pulumi side."""
    status = live.get("status") or {}
    kind = obj["kind"]
    want = int(obj["spec"].get("replicas", 1)) if kind in ("Deployment", "StatefulSet") else 0
    if kind == "Deployment":
        available = any(
            c.get("type") == "Available" and c.get("status") == "True" for c in status.get("conditions", [])
        )
        return available and int(status.get("updatedReplicas") or 0) >= want and _ready_count(status) >= want
    if kind == "StatefulSet":
        rolled = status.get("currentRevision") == status.get("updateRevision")
        return rolled and _ready_count(status) >= want
    if kind == "Service" and obj["spec"].get("selector"):
        subsets = (endpoints(obj["metadata"]["name"], obj["metadata"]["namespace"]) or {}).get("subsets") or []
        return any(s.get("addresses") for s in subsets)
    if kind == "PersistentVolumeClaim":
        return status.get("phase") == "Bound"
    if kind == "Job":
        return int(status.get("succeeded") or 0) >= 1
    if kind == "Ingress":
        return bool((status.get("loadBalancer") or {}).get("ingress"))
    return True


def _ready_count(status: dict[str, Any]) -> int:
    return int(status.get("readyReplicas") or 0)


def _cpu_split() -> tuple[float, float]:
    """CPU used by this process (the inline program runs here) and by its finished children (the pulumi CLI and
    the provider plugin, reaped when `up` returns; the sandbox's are not yet)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _cpu_seconds() -> float:
    return sum(_cpu_split())


def _load() -> str:
    """The 1-minute load average against the cores: the figures are wall times on a shared machine."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def apply_with_client(kubeconfig: Path, objects: list[dict[str, Any]]) -> float:
    """Create every object in order (server-side apply), then wait until all are ready; seconds taken."""
    from kubernetes import dynamic
    from kubernetes.dynamic.exceptions import NotFoundError

    api = api_client(kubeconfig)
    client = dynamic.DynamicClient(api)
    started = time.perf_counter()
    try:
        for obj in objects:
            resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            body = dict(obj)
            if obj["kind"] == "Secret":
                body = {**obj, "stringData": {"value": "benchmark"}}
            resource.server_side_apply(
                body=body,
                name=obj["metadata"]["name"],
                namespace=obj["metadata"].get("namespace"),
                field_manager="benchmark",
            )
        pending = list(objects)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS

        def live(api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any]:
            found = client.resources.get(api_version=api_version, kind=kind).get(name=name, namespace=namespace)
            return dict(found.to_dict())

        def endpoints(name: str, namespace: str) -> dict[str, Any] | None:
            try:
                return live("v1", "Endpoints", name, namespace)
            except NotFoundError:
                return None

        for _ in range(int(READY_TIMEOUT_SECONDS / 0.5)):
            pending = [
                o
                for o in pending
                if not _ready(
                    o,
                    live(o["apiVersion"], o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")),
                    endpoints,
                )
            ]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if pending:
            raise SystemExit(f"{len(pending)} objects not ready after {READY_TIMEOUT_SECONDS:.0f} s")
        return time.perf_counter() - started
    finally:
        api.close()


def canary_running(kubeconfig: Path, node: str, image: str) -> None:
    """Until the API server shows a Running canary pod of `image` on `node` (bounded)."""
    from kubernetes import client

    api = api_client(kubeconfig)
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    try:
        for _ in range(int(READY_TIMEOUT_SECONDS / 0.1)):
            pods = core.list_pod_for_all_namespaces(
                label_selector=f"{NODE_LABEL}={node},{TRACK_LABEL}=canary", _request_timeout=10
            ).items
            if any(
                p.spec.node_name == node
                and p.status.phase == "Running"
                and not p.metadata.deletion_timestamp
                and image in (c.image for c in p.spec.containers)
                for p in pods
            ):
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        api.close()
    raise SystemExit(f"no canary pod of {image} on {node} after {READY_TIMEOUT_SECONDS:.0f} s")


def rollout_steps(fleet_path: Path, state: Path, kubeconfig: Path, region: str) -> list[float]:
    """Seconds of each rollout step through Pulumi: the stack update with a new asr canary on the region's first
    node until the API server shows its pod Running there. Between steps the canary is removed (not timed)."""
    fleet = load_fleet(fleet_path).fleet
    node = fleet.regions[region].edge_nodes[0].id
    pins = spec_pins(fleet)
    stable = pins.get(node, "asr").stable
    times = []
    for step in range(ROLLOUT_STEPS):
        canary = f"{stable.rsplit(':', 1)[0]}:9.9.{step}-bench"
        started = time.perf_counter()
        up(
            region,
            fleet_path,
            pins=pins.with_pin(node, "asr", ServicePin(stable, canary)),
            state=state,
            kubeconfig=kubeconfig,
        )
        canary_running(kubeconfig, node, canary)
        times.append(time.perf_counter() - started)
        up(region, fleet_path, state=state, kubeconfig=kubeconfig)
    return times


def with_regions(fleet_path: Path, count: int) -> list[str]:
    """Clone the spec's regions (nodes renamed) until it has `count`; the region names."""
    import yaml

    doc = yaml.safe_load(fleet_path.read_text(encoding="utf-8"))
    regions = doc["regions"]
    originals = list(regions.items())
    for i in range(len(regions), count):
        name, region = originals[i % len(originals)]
        clone = yaml.safe_load(yaml.safe_dump(region))
        for node in clone["edge_nodes"]:  # ids and hostnames are unique in a fleet
            node["id"] = f"r{i:02d}-{node['id']}"
            if "public_hostname" in node:
                node["public_hostname"] = f"r{i:02d}-{node['public_hostname']}"
        clone.get("kubernetes", {}).pop("namespace", None)  # the default: xiaozhi-<region>
        regions[f"r{i:02d}-{name}"] = clone
    fleet_path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return list(regions)


def regions_at_once(root: Path, count: int, parallel: int) -> None:
    """Every region at once vs each alone, each measurement in a fresh sandbox after `provision cloud`."""
    from xzctl.provision.regions import RegionRun, up_regions

    fleet_path = sandbox_example(root / "fleet.yaml")
    names = with_regions(fleet_path, count)
    runs = {}
    for label, at_once in (("all", parallel), ("alone", 1)):
        state = root / f"state-{label}"
        info = start_sandbox(fleet_path, state, kubernetes=True)
        kubeconfig = Path(info.kubeconfig)
        try:
            up("cloud", fleet_path, state=state, kubeconfig=kubeconfig)
            started, cpu = time.perf_counter(), _cpu_seconds()
            outcomes = up_regions(names, RegionRun(fleet_path, False, state, kubeconfig=kubeconfig), at_once=at_once)
            runs[label] = (time.perf_counter() - started, outcomes, f"{_load()}, {_cpu_seconds() - cpu:.0f} CPU-s")
        finally:
            stop_sandbox(state)
    wall, outcomes, load = runs["all"]
    alone = {o.region: o.seconds for o in runs["alone"][1]}
    failed = [o for label in runs for o in runs[label][1] if not o.ok]
    slowest = max(alone, key=alone.__getitem__)
    print(f"{len(names)} regions, {parallel} at once: {wall:.1f} s wall (load at the end {load} of region processes)")
    print(f"  each alone: {', '.join(f'{r} {s:.1f} s' for r, s in alone.items())} (load at the end {runs['alone'][2]})")
    print(f"  each in the batch: {', '.join(f'{o.region} {o.seconds:.1f} s' for o in outcomes)}")
    ratio = wall / alone[slowest]
    print(
        f"  ratio to the slowest alone ({slowest}): {ratio:.2f}x (goal <= {RATIO_GOAL}x): "
        f"{'ok' if ratio <= RATIO_GOAL else 'MISSED'}"
    )
    for o in failed:
        print(f"  FAILED {o.region}: {o.error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="beijing")
    parser.add_argument("--all-regions", action="store_true")
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    os.environ["PATH"] = os.pathsep.join([str(engine_bin_dir()), os.environ.get("PATH", "")])
    os.environ.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    for name, value in SECRETS.items():
        os.environ.setdefault(name, value)
    with tempfile.TemporaryDirectory(prefix="xzctl-engine-bench-") as tmp:
        os.environ["PULUMI_HOME"] = str(Path(tmp) / "pulumi-home")
        if args.all_regions:
            regions_at_once(Path(tmp), args.regions, args.parallel)
        else:
            one_region(Path(tmp), args.region)


def one_region(root: Path, region: str) -> None:
    """One region's up against the client-side apply of the same objects, its no-op up and rollout steps."""
    fleet_path = sandbox_example(root / "fleet.yaml")
    state = root / "state"
    info = start_sandbox(fleet_path, state, kubernetes=True)
    kubeconfig = Path(info.kubeconfig)
    try:
        up("cloud", fleet_path, state=state, kubeconfig=kubeconfig)
        cpu = _cpu_split()
        started = time.perf_counter()
        first: list[float] = []  # when the engine reported its first resource step
        result = up(
            region, fleet_path, state=state, kubeconfig=kubeconfig, on_event=lambda _: first.append(time.perf_counter())
        )
        region_up = time.perf_counter() - started
        own, children = (after - before for after, before in zip(_cpu_split(), cpu, strict=True))
        startup = (first[0] if first else started) - started
        noops = []
        for _ in range(NOOP_RUNS):
            started = time.perf_counter()
            up(region, fleet_path, state=state, kubeconfig=kubeconfig)
            noops.append(time.perf_counter() - started)
        noop = statistics.median(noops)
        steps = rollout_steps(fleet_path, state, kubeconfig, region)
    finally:
        stop_sandbox(state)
    resources = sum(result.changes.values())
    objects = target_objects(load_fleet(fleet_path).fleet, region).objects()
    baseline_state = root / "baseline"
    info = start_sandbox(fleet_path, baseline_state, kubernetes=True)
    try:
        client_started = _cpu_seconds()
        baseline = apply_with_client(Path(info.kubeconfig), objects)
        baseline_cpu = _cpu_seconds() - client_started
    finally:
        stop_sandbox(baseline_state)
    ratio = region_up / baseline
    print(f"region {region}: {resources} resources, {len(objects)} Kubernetes objects")
    print(f"  pulumi up (xzctl provision):        {region_up:7.1f} s")
    print(
        f"    of which before the first resource step (checks, workspace, config, engine and plugin start): {startup:.1f} s"
    )
    print(f"  kubernetes client apply + readiness: {baseline:7.1f} s")
    print(
        f"  CPU: pulumi up {own + children:.1f} s (xzctl and its program {own:.1f} s, "
        f"CLI and plugins {children:.1f} s), client {baseline_cpu:.1f} s; load {_load()}"
    )
    print(f"  ratio {ratio:.2f}x (goal <= {RATIO_GOAL}x): {'ok' if ratio <= RATIO_GOAL else 'MISSED'}")
    print(
        f"  no-op up: median {noop:.1f} s (min {min(noops):.1f}, max {max(noops):.1f}) of {len(noops)} "
        f"(goal <= {NOOP_GOAL_SECONDS:.0f} s): {'ok' if noop <= NOOP_GOAL_SECONDS else 'MISSED'}"
    )
    print(
        f"  rollout step through Pulumi (deploy -> canary pod running on the node): median "
        f"{statistics.median(steps):.1f} s (min {min(steps):.1f}, max {max(steps):.1f}) of {len(steps)}"
    )


if __name__ == "__main__":
    main()
