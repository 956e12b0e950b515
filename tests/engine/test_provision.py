"""`xzctl provision` through the real pulumi engine against the sandbox's local Kubernetes (tier `engine`).

One session cluster (tests/fixtures/engine.py); the cloud goes up first (edge stacks read its endpoint), then
beijing: preview, up, every object the manifests builder emits compared with what the API server holds, a
no-op second up, `provision status`, and a locked stack.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.engine import Engine
from xzctl import reaper
from xzctl.provision.engine import ENGINE_MARK
from xzctl.provision.objects import target_objects
from xzctl.provision.program import resource_count
from xzctl.spec import load_fleet

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1800)]
REGION = "beijing"


@pytest.fixture(scope="module")
def cloud(engine: Engine) -> dict[str, Any]:
    code, first = engine.xzctl_json("provision", "cloud", "--yes")
    assert code == 0
    code, second = engine.xzctl_json("provision", "cloud", "--yes")
    assert code == 0
    return {"first": first, "second": second}


@pytest.fixture(scope="module")
def region(engine: Engine, cloud: dict[str, Any]) -> dict[str, Any]:  # noqa: ARG001 (the region stack reads the cloud stack)
    code, preview = engine.xzctl_json("provision", "region", REGION, "--preview")
    assert code == 0
    code, first = engine.xzctl_json("provision", "region", REGION, "--yes")
    assert code == 0
    code, second = engine.xzctl_json("provision", "region", REGION, "--yes")
    assert code == 0
    return {"preview": preview, "first": first, "second": second}


def test_cloud_up_creates_everything_then_changes_nothing(engine: Engine, cloud: dict[str, Any]) -> None:
    objects = target_objects(load_fleet(engine.fleet).fleet, "cloud")
    assert cloud["first"]["changes"] == {"create": resource_count(objects)}
    assert cloud["first"]["outputs"]["cloudEndpoint"] == "https://cloud.xiaozhi.example/v1"
    assert set(cloud["second"]["changes"]) == {"same"}


def test_region_preview_then_up_create_every_resource(engine: Engine, region: dict[str, Any]) -> None:
    total = resource_count(target_objects(load_fleet(engine.fleet).fleet, REGION))
    assert region["preview"]["preview"] is True
    # The stack resource itself is not counted by a preview's summary of a new stack; all else is created.
    assert region["preview"]["changes"].get("create", 0) in (total, total - 1)
    # The cloud stack's reference is read, not created: every other resource is.
    assert region["first"]["changes"] == {"create": total - 1}


def test_a_second_up_reports_no_change(region: dict[str, Any]) -> None:
    assert set(region["second"]["changes"]) == {"same"}, region["second"]["changes"]


def _subset_mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where `actual` (from the API server) differs from `expected` (what we rendered), field by field for the
    fields we set; the server's defaults and status are extra fields, not differences."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a mapping, got {actual!r}"]
        return [m for k, v in expected.items() for m in _subset_mismatches(v, actual.get(k), f"{path}.{k}")]
    if expected in ([], {}) and actual is None:
        return []  # the API server drops empty lists and maps
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        return [
            m
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for m in _subset_mismatches(e, a, f"{path}[{i}]")
        ]
    # Quantities and ports come back as the API server spells them ("1" vs 1).
    return [] if expected == actual or str(expected) == str(actual) else [f"{path}: {expected!r} != {actual!r}"]


@pytest.mark.usefixtures("region")
def test_every_rendered_object_is_in_the_api_server_as_rendered(engine: Engine) -> None:
    from kubernetes import dynamic

    from xzctl.sandbox.kubernetes import api_client

    objects = target_objects(load_fleet(engine.fleet).fleet, REGION).objects()
    api = api_client(engine.kubeconfig)
    client = dynamic.DynamicClient(api)
    problems = []
    try:
        for obj in objects:
            meta = obj["metadata"]
            resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            live = resource.get(name=meta["name"], namespace=meta.get("namespace")).to_dict()
            # A Secret's value is set by the stack (stringData -> data), never rendered.
            want = {k: v for k, v in obj.items() if not (obj["kind"] == "Secret" and k in ("data", "stringData"))}
            problems += [f"{obj['kind']}/{meta['name']}{m}" for m in _subset_mismatches(want, live)]
    finally:
        api.close()
    assert len(objects) > 50
    assert problems == []


@pytest.mark.usefixtures("region")
def test_status_shows_the_last_update_result_and_counts(engine: Engine) -> None:
    code, data = engine.xzctl_json("provision", "status", fleet=False)
    assert code == 0
    stacks = {s["stack"]: s for s in data["stacks"]}
    edge = stacks[f"edge-{REGION}"]
    assert edge["last_update"] == "update" and edge["result"] == "succeeded"
    assert set(edge["changes"]) == {"same"} and edge["finished"]
    # The checkpoint also holds the default provider the cloud stack reference brings.
    assert edge["resources"] >= resource_count(target_objects(load_fleet(engine.fleet).fleet, REGION))
    assert stacks["cloud"]["result"] == "succeeded"


@pytest.mark.usefixtures("cloud")
def test_a_locked_stack_gives_exit_5(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    lock = engine.state / "pulumi" / ".pulumi" / "locks" / "organization" / "xzctl" / "cloud" / "engine-test.json"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(
        json.dumps({"pid": 1, "username": "ops", "hostname": "jump-1", "timestamp": "now"}), encoding="utf-8"
    )
    try:
        assert engine.xzctl("provision", "cloud", "--preview") == 5
        assert "stack cloud is locked by another update: ops@jump-1 (pid 1)" in capsys.readouterr().err
    finally:
        lock.unlink()


def engine_processes(owner: int) -> list[reaper.Proc]:
    """The processes of the engine runs of the xzctl process `owner` (the engine and its plugins)."""
    return [p for p, mark in reaper.marked(ENGINE_MARK) if mark.partition(".")[0] == str(owner)]


@pytest.mark.usefixtures("cloud")
def test_ctrl_c_during_a_run_leaves_no_engine_process(engine: Engine, tmp_path: Path) -> None:
    """Ctrl-C in the terminal (SIGINT to the foreground process group) once the kubernetes plugin runs: xzctl
    exits 130 and nothing its engine started outlives it."""
    import signal
    import subprocess
    import sys
    import time

    argv = [sys.executable, "-m", "xzctl", "provision", "region", "guangzhou", "--preview"]
    argv += ["--fleet", str(engine.fleet), "--state-dir", str(engine.state)]
    stderr = tmp_path / "stderr"
    # A terminal's foreground job takes SIGINT; this runner may ignore it (a background job of a non-interactive
    # shell, as CI starts it), and a child inherits that: xzctl would then never see the Ctrl-C, only its engine.
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        with stderr.open("wb") as err:
            proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.monotonic() + 300
    try:
        for _ in range(3000):  # until the plugin runs, bounded
            running = [p.command for p in engine_processes(proc.pid)]
            if any("pulumi-resource-kubernetes" in c for c in running) or proc.poll() is not None:
                break
            assert time.monotonic() < deadline, "the engine never started its kubernetes plugin"
            time.sleep(0.1)
        assert proc.poll() is None, "the preview ended before Ctrl-C"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130, stderr.read_text(encoding="utf-8", errors="replace")[-2000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert engine_processes(proc.pid) == []


@pytest.mark.usefixtures("cloud")
def test_sigkill_during_up_then_recovery_with_consent(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """Kill `provision region shanghai` (xzctl and its pulumi) mid-update: the next run stops the plugin the kill
    missed, says what was left and refuses; --recover clears it and applies; the update after that changes nothing."""
    import signal
    import subprocess
    import sys
    import time

    from xzctl.provision.backend import find_lock, stack_statuses

    argv = [sys.executable, "-m", "xzctl", "provision", "region", "shanghai", "--yes"]
    argv += ["--fleet", str(engine.fleet), "--state-dir", str(engine.state)]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait = 300
    deadline = time.monotonic() + wait
    written = 0
    try:
        for _ in range(3000):  # until the update has written some resources, bounded
            written = {s.stack: s.resources for s in stack_statuses(engine.state)}.get("edge-shanghai", 0)
            if written >= 10 or proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the update ended before it could be killed"
        # else the kill below would come before the update, and the lock's absence would say nothing
        assert written >= 10, f"the update had written {written} resources after {wait} s, not yet 10 to kill it at"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert find_lock(engine.state, "edge-shanghai") is not None
    # The engine's kubernetes plugin sits in a process group of its own: the kill missed it (issue 28's leak) ...
    assert any("pulumi-resource-kubernetes" in p.command for p in engine_processes(proc.pid))
    assert engine.xzctl("provision", "region", "shanghai", "--yes") == 5
    assert engine_processes(proc.pid) == []  # ... and the next run stopped it
    err = capsys.readouterr().err
    assert "was interrupted and left" in err and "--recover" in err
    code, recovered = engine.xzctl_json("provision", "region", "shanghai", "--yes", "--recover")
    assert code == 0
    assert find_lock(engine.state, "edge-shanghai") is None
    code, again = engine.xzctl_json("provision", "region", "shanghai", "--yes")
    assert code == 0 and set(again["changes"]) == {"same"}, (recovered, again)


@pytest.mark.usefixtures("cloud")
def test_preview_works_offline_with_a_local_chart(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> None:
    import yaml

    chart = tmp_path_factory.mktemp("charts") / "vendored-monitoring"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: vendored-monitoring\nversion: 0.1.0\n", encoding="utf-8")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vendored-monitoring}\ndata: {from: local}\n",
        encoding="utf-8",
    )
    doc = yaml.safe_load(engine.fleet.read_text(encoding="utf-8"))
    # The other charts stay external (installed already): nothing may reach for a chart repository.
    doc["regions"]["guangzhou"]["kubernetes"]["charts"]["monitoring"] = {"source": "local", "path": str(chart)}
    fleet = chart.parent / "fleet-local-chart.yaml"
    fleet.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    from xzctl.provision import up

    result = up("guangzhou", fleet, preview=True, state=engine.state, kubeconfig=engine.kubeconfig)
    assert result.by_type["kubernetes:helm.sh/v3:Release"] == {"create": 1}
    assert result.changes["create"] >= resource_count(target_objects(load_fleet(fleet).fleet, "guangzhou")) - 1


@pytest.mark.usefixtures("region")
def test_the_simulator_runs_what_the_api_server_runs(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A canary pinned through Pulumi reaches the simulator only through the cluster (the pod follower), and
    leaves it when the next update drops the pin."""
    import time

    from xzctl.manifests.pins import ServicePin, spec_pins
    from xzctl.sandbox import SimulatorClient

    fleet = load_fleet(engine.fleet).fleet
    stable = spec_pins(fleet).get("bj-edge-01", "asr").stable
    canary = stable.rsplit(":", 1)[0] + ":9.9.9-canary"
    pins = spec_pins(fleet).with_pin("bj-edge-01", "asr", ServicePin(stable, canary))
    path = tmp_path_factory.mktemp("pins") / "pins.json"
    path.write_text(json.dumps(pins.to_json()), encoding="utf-8")
    sim = SimulatorClient(engine.sandbox.simulator_url)

    def asr_images(want: str | None) -> dict[str, Any]:
        images: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        for _ in range(600):  # the follower polls every second
            images = sim.state()["nodes"]["bj-edge-01"]["images"]["asr"]
            if images["canary"] == want or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return images

    code, applied = engine.xzctl_json("provision", "region", REGION, "--yes", "--pins", str(path))
    assert code == 0 and applied["changes"].get("create", 0) >= 1
    assert asr_images(canary) == {"stable": stable, "canary": canary}
    code, _ = engine.xzctl_json("provision", "region", REGION, "--yes")
    assert code == 0
    assert asr_images(None) == {"stable": stable, "canary": None}


@pytest.mark.usefixtures("cloud")
def test_refresh_reports_drift_then_destroy_removes_every_resource(engine: Engine) -> None:
    """guangzhou applied, then a Service deleted outside Pulumi: `refresh --preview` names it and keeps the state;
    `refresh` reads it back; `destroy` removes every resource and says so."""
    from kubernetes import client as k8s

    from xzctl.sandbox.kubernetes import api_client

    code, applied = engine.xzctl_json("provision", "region", "guangzhou", "--yes")
    assert code == 0, applied
    code, outputs = engine.xzctl_json("provision", "outputs", "region", "guangzhou")
    assert code == 0 and outputs["outputs"]["namespace"] == "xiaozhi-guangzhou"
    api = api_client(engine.kubeconfig)
    try:
        core = k8s.CoreV1Api(api)
        deleted = core.list_namespaced_service("xiaozhi-guangzhou").items[0].metadata.name
        core.delete_namespaced_service(deleted, "xiaozhi-guangzhou")
    finally:
        api.close()
    code, preview = engine.xzctl_json("provision", "refresh", "region", "guangzhou", "--preview")
    assert code == 0, preview
    drift = {(r["name"], r["op"]) for r in preview["resources"]}
    assert drift == {(f"xiaozhi-guangzhou/{deleted}", "delete")}, preview
    code, again = engine.xzctl_json("provision", "refresh", "region", "guangzhou", "--preview")
    assert code == 0 and {(r["name"], r["op"]) for r in again["resources"]} == drift  # a preview keeps the state
    code, refreshed = engine.xzctl_json("provision", "refresh", "region", "guangzhou", "--yes")
    assert code == 0 and refreshed["changes"].get("delete") == 1, refreshed
    code, destroyed = engine.xzctl_json("provision", "destroy", "region", "guangzhou", "--yes")
    assert code == 0, destroyed
    # Pulumi's count also has the stack and its provider; the list names the cluster's resources.
    assert destroyed["changes"]["delete"] >= len(destroyed["resources"]) > 50
    assert {r["op"] for r in destroyed["resources"]} == {"delete"}
    status = {s["stack"]: s for s in engine.xzctl_json("provision", "status", fleet=False)[1]["stacks"]}
    assert status["edge-guangzhou"]["resources"] == 0
