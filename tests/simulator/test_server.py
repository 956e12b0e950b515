"""The simulator's HTTP API on 127.0.0.1: routes, status codes, and clear 400s."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.fixtures.fault_server import serving
from xzctl.simulator.server import Simulator, make_handler
from xzctl.spec import Fleet


@pytest.fixture
def url(example_fleet: Fleet) -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), make_handler(Simulator(example_fleet, seed=2)))) as port:
        yield f"http://127.0.0.1:{port}"


def test_routes(url: str) -> None:
    assert requests.get(f"{url}/healthz", timeout=5).text == "ok\n"
    metrics = requests.get(f"{url}/nodes/gz-edge-02/metrics", timeout=5)
    assert metrics.status_code == 200 and metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "xiaozhi_active_devices " in metrics.text
    assert requests.get(f"{url}/nodes/nope/metrics", timeout=5).status_code == 404
    assert requests.get(f"{url}/metrics", timeout=5).status_code == 404
    state = requests.get(f"{url}/state", timeout=5).json()
    assert set(state["nodes"]) == {
        "bj-edge-01",
        "bj-edge-02",
        "bj-edge-03",
        "sh-edge-01",
        "sh-edge-02",
        "gz-edge-01",
        "gz-edge-02",
    }
    node = state["nodes"]["gz-edge-02"]
    assert node["region"] == "guangzhou" and node["up"] is True and node["metrics"] == "ok"
    assert node["images"]["asr"] == {"stable": "registry.xiaozhi.example/inference/asr:2.2.0", "canary": None}


def test_control_answers_400_with_a_message(url: str) -> None:
    bad = requests.post(f"{url}/control", data="{not json", timeout=5)
    assert bad.status_code == 400 and "invalid JSON" in bad.json()["error"]
    empty = requests.post(f"{url}/control", timeout=5)
    assert empty.status_code == 400
    unknown = requests.post(f"{url}/control", json={"action": "node_down", "node": "mars-01"}, timeout=5)
    assert unknown.status_code == 400 and "unknown edge node 'mars-01'" in unknown.json()["error"]
    ok = requests.post(f"{url}/control", json={"action": "node_down", "node": "gz-edge-01"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["ok"] is True
    assert requests.get(f"{url}/nodes/gz-edge-01/metrics", timeout=5).status_code == 503


def test_module_entry_refuses_a_bad_fleet(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("kind: Fleet\n")
    result = subprocess.run(
        [sys.executable, "-m", "xzctl.simulator", "--fleet", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and result.stderr.startswith("simulator: ")
