"""`xzctl loadtest`: usage errors before anything starts (one line, exit 2) and the summary table."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tests.fixtures.golden import assert_golden
from xzctl.cli import run
from xzctl.cli.loadtest import print_summary
from xzctl.loadtest.summary import FIRST_AUDIO, STT, TURN, Snapshot, Timing
from xzctl.sandbox.processes import free_port

GOLDEN = Path(__file__).parent / "golden"
URLS = ["--url", "ws://127.0.0.1:9/xiaozhi/v1/", "--ota-url", "http://127.0.0.1:9/xiaozhi/ota/"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--devices", "0", *URLS], "--devices 0: give 1 to"),
        (["--devices", "-2", *URLS], "--devices -2"),
        (["--duration", "-5s", *URLS], "Invalid value for '--duration'"),
        (["--duration", "0", *URLS], "--duration must be more than 0"),
        (["--ramp", "2m", "--duration", "1m", *URLS], "--ramp 120s must be at least 0 and shorter than --duration 60s"),
        (["--url", "ws://127.0.0.1:9/"], "give both --url"),
        (["--url", "127.0.0.1:9", "--ota-url", "http://127.0.0.1:9/"], "--url '127.0.0.1:9' is not a ws/wss URL"),
        (["--workers", "-1", *URLS], "--workers -1"),
        (["--corpus", "/nonexistent/wavs", *URLS], "--corpus /nonexistent/wavs: not a folder"),
        (["--master-bind", "nowhere", *URLS], "--master-bind 'nowhere' is not HOST:PORT"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["loadtest", "run", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def xzctl(*args: str) -> subprocess.CompletedProcess[str]:
    """A real run in its own process: Locust patches the process it runs in for gevent. Bounded at 240 s: under the
    5 m --duration a run that waited it out would take, over a start-up beside a second test run (120 s at load 50)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "xzctl", *args], capture_output=True, text=True, timeout=240, env=env, check=False
    )


@pytest.mark.parametrize(
    "given",
    [
        ["--asr-path", "openai: whisper", "--server-processes", "2"],  # no image
        ["--image", "server=upstream", "--server-processes", "2"],  # no ASR path
        ["--image", "server=upstream", "--asr-path", "openai: whisper"],  # no process count: a node's own, not 1
    ],
)
def test_a_sweep_of_a_node_by_url_says_what_served_the_turns(given: list[str], tmp_path: Path) -> None:
    # its own process: the sweep's stats model is Locust's, which patches the process that imports it
    done = xzctl("loadtest", "sweep", "--node-class", "site-a", "--out", str(tmp_path / "a.yaml"), *URLS, *given)
    assert done.returncode == 2, done.stderr
    assert "--image NAME=IMAGE, --asr-path TEXT and --server-processes N" in done.stderr
    assert not (tmp_path / "a.yaml").exists()


@pytest.mark.live
def test_without_a_url_it_needs_the_sandbox(tmp_path: Path) -> None:
    done = xzctl("loadtest", "run", "--state-dir", str(tmp_path))
    assert done.returncode == 2 and "no sandbox is running" in done.stderr


@pytest.mark.live
def test_a_dead_node_is_one_line_and_exit_3_at_once() -> None:
    port = free_port()
    done = xzctl(
        "loadtest",
        "run",
        "--duration",
        "5m",
        "--url",
        f"ws://127.0.0.1:{port}/xiaozhi/v1/",
        "--ota-url",
        f"http://127.0.0.1:{port}/xiaozhi/ota/",
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith(f"xzctl: error: no xiaozhi server answers at ws://127.0.0.1:{port}/xiaozhi/v1/")
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""  # at once: xzctl()'s bound < 5 m


def test_worker_needs_a_master_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["loadtest", "worker", "--master", "10.0.0.5"]) == 2
    assert "--master '10.0.0.5' is not HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize("width", [80, 120])
def test_summary_table(width: int) -> None:
    fa = Timing(count=40, p50=1.9, p95=3.4, max=5.1)
    snap = Snapshot(
        4,
        42,
        2,
        {STT: Timing(40, 0.8, 1.3, 1.6), FIRST_AUDIO: fa, TURN: Timing(40, 4.2, 6.0, 7.7)},
        {"timeout": 2},
        90.2,
    )
    out = io.StringIO()
    print_summary(Console(file=out, width=width, color_system=None), snap, wide=False)
    assert_golden(GOLDEN / f"loadtest_summary_{width}.txt", out.getvalue())


def test_sweep_curve_table() -> None:
    from tests.fixtures.measured import fake_profile
    from xzctl.cli.loadtest import print_curve

    out = io.StringIO()
    print_curve(
        Console(file=out, width=80, color_system=None),
        fake_profile(120),
        Path("capacity/edge-standard.yaml"),
        wide=False,
    )
    assert_golden(GOLDEN / "loadtest_sweep_80.txt", out.getvalue())
