"""`xzctl sandbox up|status|down` as an operator runs them, in their own state dir."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.fixtures.sandbox import pid_gone
from xzctl.cli import run
from xzctl.sandbox import SimulatorClient

pytestmark = pytest.mark.live


def test_up_status_down(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XZCTL_STATE_DIR", str(tmp_path))
    # No sandbox: exit 2 like a live command with no Prometheus to ask (one code for one situation).
    assert run(["sandbox", "status"]) == 2
    assert "no sandbox is running" in capsys.readouterr().err
    assert run(["sandbox", "scenario", "node-down"]) == 2
    assert "scenario node-down needs --node" in capsys.readouterr().err  # not "unknown edge node None"
    assert run(["sandbox", "scenario", "reset"]) == 2
    assert "no sandbox is running" in capsys.readouterr().err
    try:
        assert run(["--example", "sandbox", "up", "--scrape-interval", "1", "-o", "json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["prometheus_url"].startswith("http://127.0.0.1:") and info["edge_nodes"] == 7
        assert run(["--example", "sandbox", "up", "--scrape-interval", "1"]) == 0
        again = capsys.readouterr()
        assert "already up" in again.err and info["prometheus_url"] in again.out
        assert run(["sandbox", "up", "--scale", "20", "--seed", "5"]) == 5  # other options: an error, not the old one
        err = capsys.readouterr().err
        assert "not --scale 20" in err and "seed 0, not 5" in err and "scrape interval 1 s, not 10 s" in err
        nodes = {"bj-edge-01", "bj-edge-02", "bj-edge-03", "sh-edge-01", "sh-edge-02", "gz-edge-01", "gz-edge-02"}
        for _ in range(30):  # Prometheus adds static targets on its first discovery tick, within ~5 s
            assert run(["sandbox", "status", "-o", "json"]) == 0
            status = json.loads(capsys.readouterr().out)
            if set(status["targets"]) == nodes:
                break
            time.sleep(0.5)
        assert status["running"] == {"simulator": True, "prometheus": True}
        assert set(status["targets"]) == nodes
        assert run(["sandbox", "scenario", "node-down", "--node", "bj-edge-02", "-o", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["action"] == "node_down"
        assert run(["sandbox", "scenario", "set-devices", "--node", "bj-edge-01", "--devices", "140"]) == 0
        assert capsys.readouterr().out.strip() == "set-devices: done (nodes bj-edge-01 140)"  # for people, not JSON
        assert SimulatorClient(info["simulator_url"]).state()["nodes"]["bj-edge-02"]["up"] is False
        assert (
            run(["sandbox", "scenario", "deploy", "--node", "bj-edge-01", "--service", "asr", "--track", "canary"]) == 0
        )
        assert run(["sandbox", "scenario", "set-devices", "--node", "bj-edge-01"]) == 2
        assert "scenario set-devices needs --devices or --utilization" in capsys.readouterr().err
        assert run(["sandbox", "scenario", "set-devices", "--node", "bj-edge-01", "--devices", "-1"]) == 2
        err = capsys.readouterr().err  # the simulator's refusal names the action, never a Python dict
        assert "simulator refused set_devices: " in err and "{" not in err
    finally:
        assert run(["sandbox", "down"]) == 0
    assert all(pid_gone(pid) for pid in info["pids"].values())
    assert run(["--example", "sandbox", "up", "--history", "soon"]) == 2
    assert "--history 'soon' is not a duration" in capsys.readouterr().err
