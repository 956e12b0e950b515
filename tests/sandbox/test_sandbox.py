"""The sandbox starts a real Prometheus scraping the simulator, and leaves nothing running after down."""

from __future__ import annotations

import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.sandbox import HISTORY_GROUP, HISTORY_TIMEOUT, pid_gone, wait_for_query
from xzctl.errors import BadInputError, ExternalToolError
from xzctl.metrics import queries as q
from xzctl.sandbox import (
    SandboxAlreadyUpError,
    SandboxInfo,
    current_prometheus_url,
    sandbox_status,
    start_sandbox,
    stop_sandbox,
    target_health,
)
from xzctl.spec import Fleet

pytestmark = pytest.mark.live
Factory = Callable[..., SandboxInfo]


def test_up_scrapes_every_node_then_down_leaves_no_process(sandbox_factory: Factory, example_fleet: Fleet) -> None:
    box = sandbox_factory()
    nodes = {n.id for n in example_fleet.edge_nodes()}
    samples = wait_for_query(box.prometheus_url, "up == 1", lambda s: len(s) == len(nodes), 30)
    assert {s.labels["node"] for s in samples} == nodes
    assert {s.labels["job"] for s in samples} == {"xiaozhi-edge"}
    devices = wait_for_query(box.prometheus_url, q.active_devices(), lambda s: len(s) == len(nodes), 10)
    assert all(0 < s.value <= 150 for s in devices)
    health = target_health(box)
    assert set(health) == nodes and {h["region"] for h in health.values()} == set(example_fleet.regions)
    assert current_prometheus_url(box.state_dir) == box.prometheus_url
    with pytest.raises(SandboxAlreadyUpError, match=box.prometheus_url):
        start_sandbox(None, box.state_dir)

    stop_sandbox(box.state_dir)
    assert all(pid_gone(pid) for pid in box.pids.values())
    assert sandbox_status(box.state_dir) is None
    assert current_prometheus_url(box.state_dir) is None
    assert not Path(box.work_dir).exists()


@pytest.mark.timeout(HISTORY_TIMEOUT)
@pytest.mark.xdist_group(HISTORY_GROUP)
def test_history_is_queryable_from_the_first_minute(history_sandbox: SandboxInfo) -> None:
    box = history_sandbox  # started with days of backfilled history
    # Whole minutes: the step that fits days of 7 nodes into the sample budget.
    assert box.history is not None and box.history["step_seconds"] % 60 == 0
    # Two hours ago is only in the backfilled blocks; the same series names and labels as live scrapes.
    two_hours_ago = time.time() - 7200
    old = wait_for_query(box.prometheus_url, q.active_devices(), lambda s: len(s) == 7, 20, at=two_hours_ago)
    assert all(s.value > 0 for s in old)
    # a rate over backfilled samples: the window `sandbox up` advises (two steps) holds two of them
    window = f"{2 * box.history['step_seconds'] // 60}m"
    trend = wait_for_query(
        box.prometheus_url, q.p95_latency("end_to_end", window=window, by=("region",)), bool, 20, at=two_hours_ago
    )
    assert {s.labels["region"] for s in trend} == {"beijing", "shanghai", "guangzhou"}
    assert all(0.3 < s.value < 3.0 for s in trend)


def test_scale_generates_a_fleet_with_a_target_per_node(sandbox_factory: Factory) -> None:
    box = sandbox_factory(scale=40)
    assert box.nodes == 40
    wait_for_query(box.prometheus_url, "count(up == 1)", lambda s: bool(s) and s[0].value == 40, 30)


def test_missing_prometheus_is_exit_4_with_an_install_hint_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ExternalToolError, match="not an executable") as err:
        start_sandbox(None, tmp_path / "state", prometheus_bin=str(tmp_path / "no-such-prometheus"))
    assert err.value.exit_code == 4 and "apt-get install prometheus" in (err.value.hint or "")
    assert not (tmp_path / "state").exists()


def test_bad_fleet_is_refused_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("apiVersion: xzctl.io/v1\nkind: Fleet\n")
    with pytest.raises(BadInputError):
        start_sandbox(bad, tmp_path / "state")
    assert sandbox_status(tmp_path / "state") is None
    assert list((tmp_path / "state" / "sandbox").iterdir()) == []


def test_a_failing_prometheus_stops_the_simulator_too(tmp_path: Path) -> None:
    broken = tmp_path / "prometheus"
    broken.write_text("#!/bin/sh\necho 'bad flag' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(ExternalToolError, match="prometheus exited with code 1: bad flag"):
        start_sandbox(None, tmp_path / "state", prometheus_bin=str(broken))
    assert sandbox_status(tmp_path / "state") is None
    assert list((tmp_path / "state" / "sandbox").iterdir()) == []


def test_ctrl_c_during_up_leaves_no_process_and_no_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xzctl.sandbox.prometheus as prometheus_module
    import xzctl.sandbox.run as run_module

    spawned: list[int] = []
    real_spawn = run_module.spawn  # type: ignore[attr-defined]  # patched where it is looked up

    def spawn_and_track(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        proc = real_spawn(argv, log)
        spawned.append(proc.pid)
        return proc

    def interrupted(_url: str, _timeout: float) -> bool:
        raise KeyboardInterrupt  # the operator presses Ctrl-C while `up` waits for Prometheus

    monkeypatch.setattr(run_module, "spawn", spawn_and_track)  # the simulator
    monkeypatch.setattr(prometheus_module, "spawn", spawn_and_track)  # Prometheus
    monkeypatch.setattr(prometheus_module, "http_ok", interrupted)
    with pytest.raises(KeyboardInterrupt):
        start_sandbox(None, tmp_path / "state", scrape_interval_seconds=1)
    assert len(spawned) == 2 and all(pid_gone(pid) for pid in spawned)
    assert sandbox_status(tmp_path / "state") is None
    assert list((tmp_path / "state" / "sandbox").iterdir()) == []


def test_a_port_taken_between_pick_and_bind_is_retried(
    sandbox_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import xzctl.sandbox.prometheus as prometheus_module

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    taken_port = taken.getsockname()[1]
    ports = iter([taken_port])
    real_free_port = prometheus_module.free_port  # type: ignore[attr-defined]  # patched where it is looked up
    monkeypatch.setattr(prometheus_module, "free_port", lambda: next(ports, None) or real_free_port())
    try:
        box = sandbox_factory()
    finally:
        taken.close()
    assert box.prometheus_url != f"http://127.0.0.1:{taken_port}"
    wait_for_query(box.prometheus_url, "count(up)", lambda s: bool(s) and s[0].value == 7, 30)
    assert "address already in use" in (Path(box.work_dir) / "prometheus.log").read_text()
