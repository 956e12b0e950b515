"""`images diff`: spec pins against what the sandbox's services report, and the status of each pair."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from xzctl.checks.drift import _status
from xzctl.cli import run
from xzctl.sandbox import SandboxInfo, SimulatorClient

NEW_VAD = "registry.xiaozhi.example/inference/vad:1.2.0"


@pytest.mark.parametrize(
    ("track", "pinned", "running", "reports", "status"),
    [
        ("stable", "a:1", "a:1", True, "same"),
        ("stable", "a:1", "a:2", True, "drift"),
        ("stable", "a:1", None, True, "unknown"),  # the node reports, but not this service
        ("stable", "a:1", None, False, "unknown"),  # the node reports nothing at all
        ("canary", None, "a:2", True, "canary"),
        ("stable", None, "a:2", True, "extra"),
    ],
)
def test_status(track: str, pinned: str | None, running: str | None, reports: bool, status: str) -> None:
    assert _status(track, pinned, running, reports) == status


@pytest.mark.live
def test_diff_against_the_sandbox(
    sandbox_factory: Callable[..., SandboxInfo], capsys: pytest.CaptureFixture[str]
) -> None:
    box = sandbox_factory(scale=3)
    argv = ["images", "diff", "--state-dir", str(box.state_dir), "-o", "json"]
    for _ in range(50):  # until Prometheus has scraped every node once
        code = run(argv)
        rows = json.loads(capsys.readouterr().out)["images"]
        if code == 0:
            break
        time.sleep(0.2)
    assert code == 0 and rows == []
    SimulatorClient(box.simulator_url).control(
        {"action": "deploy", "node": "beijing-edge-0001", "service": "vad", "track": "stable", "image": NEW_VAD}
    )
    for _ in range(50):
        code = run(argv)
        rows = json.loads(capsys.readouterr().out)["images"]
        if rows:
            break
        time.sleep(0.2)
    assert code == 1
    assert [(r["node"], r["service"], r["status"], r["running"]) for r in rows] == [
        ("beijing-edge-0001", "vad", "drift", NEW_VAD)
    ]
