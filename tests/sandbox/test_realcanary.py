"""An ASR rollout on the sandbox's real node as an operator runs it: `sandbox up --real-node` with a spec pinning
the previous ASR release, then `xzctl rollout canary asr <2.0.0> --node bj-edge-01 --max-wer ...`. The canary is a
real replica with its own xiaozhi server and probe; the analysis judges the turns both probes took through the real
servers and the word error rate of both tracks; promotion restarts the stable replica on the new release, a
rollback removes the canary's processes and scrape targets. The record in the sandbox state follows each change,
so `sandbox down` stops what runs now.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.xiaozhi import NODE, xiaozhi_source
from xzctl.images.catalog import load_catalog
from xzctl.manifests.pins import ImagePins, ServicePin
from xzctl.sandbox import SandboxInfo, SimulatorClient, sandbox_status, start_sandbox, stop_sandbox
from xzctl.sandbox.realcanary import RealNodeAsr
from xzctl.spec import bundled_example_path

pytestmark = [pytest.mark.live, pytest.mark.images, pytest.mark.latency]
TURN_CHECKS = ("turn_first_audio_p95_seconds", "turn_failure_ratio", "word_error_rate")


def _releases() -> tuple[str, str]:
    """(the previous ASR release, the current one): what the rollout goes from and to."""
    image = load_catalog().get("asr")
    versions = [r.version for r in image.releases if r.yanked is None]
    current = image.info.version
    previous = versions[versions.index(current) - 1]
    return f"{image.info.repository}:{previous}", f"{image.info.repository}:{current}"


@pytest.fixture(scope="module")
def previous_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxInfo]:
    """A sandbox whose real node runs the spec's previous ASR release on its stable track."""
    previous, current = _releases()
    work = tmp_path_factory.mktemp("realcanary")
    fleet = work / "fleet.yaml"
    fleet.write_text(bundled_example_path().read_text().replace(current, previous))
    try:
        yield start_sandbox(
            fleet, work / "state", scrape_interval_seconds=1, real_node=NODE, xiaozhi_source=xiaozhi_source()
        )
    finally:
        stop_sandbox(work / "state")


def _record(info: SandboxInfo) -> dict[str, Any]:
    now = sandbox_status(info.state_dir)
    assert now is not None and now.real_node is not None
    return now.real_node


def _instances(info: SandboxInfo) -> set[str]:
    config = yaml.safe_load((Path(info.work_dir) / "prometheus.yml").read_text())
    return {t["labels"]["instance"] for t in config["scrape_configs"][0]["static_configs"]}


def _alive(pid: int) -> bool:
    try:
        return b"zombie" not in Path(f"/proc/{pid}/status").read_bytes().lower()
    except OSError:
        return False


def _twin(info: SandboxInfo) -> int | None:
    """The devices the simulator's copy of the real node is pinned to (None: it follows the load)."""
    pinned: int | None = SimulatorClient(info.simulator_url).state()["nodes"][NODE]["pinned"]
    return pinned


def _stable(record: dict[str, Any]) -> dict[str, Any]:
    return dict(record["services"][record["asr_tracks"]["stable"]])


@pytest.mark.timeout(600)
def test_a_canary_gets_a_real_path_of_its_own_and_a_rollback_removes_it(previous_node: SandboxInfo) -> None:
    previous, current = _releases()
    real = RealNodeAsr(previous_node.state_dir)
    real.apply(ImagePins({NODE: {"asr": ServicePin(previous, current)}}), None)
    record = _record(previous_node)
    tracks = record["asr_tracks"]
    canary = [tracks["canary"], *tracks["canary_path"]]
    assert {k.rsplit("-", 1)[0] for k in canary} == {"asr", "xiaozhi-server", "balancer", "probe"}
    assert record["services"][tracks["canary"]]["image"] == current
    assert tracks["canary_urls"]["websocket_url"] != record["xiaozhi"]["websocket_url"]
    scraped = {f"{NODE}/{k}" for k in canary if k.startswith(("asr", "probe"))}  # the servers export no series
    assert len(scraped) == 2 and scraped <= _instances(previous_node)
    pids = [int(record["services"][k]["pid"]) for k in canary]
    assert _twin(previous_node) == 0  # the node's series are its real replicas' while two tracks are compared
    assert all(_alive(p) for p in pids) and set(pids) <= set(record["pids"])

    real.apply(ImagePins({NODE: {"asr": ServicePin(previous)}}), None)
    after = _record(previous_node)
    assert "canary" not in after["asr_tracks"] and not set(canary) & set(after["services"])
    assert not any(_alive(p) for p in pids) and not set(pids) & set(after["pids"])
    assert not {f"{NODE}/{k}" for k in canary} & _instances(previous_node)
    assert _stable(after)["image"] == previous  # the stable replica was never touched
    assert _twin(previous_node) is None  # the simulator's copy follows the load again


@pytest.mark.timeout(900)
def test_an_operator_rolls_the_real_node_from_the_previous_asr_release_to_the_current_on_real_turns(
    previous_node: SandboxInfo,
) -> None:
    previous, current = _releases()
    before = _stable(_record(previous_node))
    assert before["image"] == previous  # from the spec's previous release
    argv = [sys.executable, "-m", "xzctl", "rollout", "canary", "asr", current, "--node", NODE, "--max-wer", "0.5"]
    # a probe takes a turn every 15 s: a 120 s window holds ~8 a track, too few to call a p95 worse (20), so such a
    # reading is inconclusive until the step holds enough; on two loaded cores a first short window may have none
    # (an error, not a verdict), and a slow spell of a fresh replica may breach a KPI in the windows it overlaps
    argv += ["--interval", "20s", "--window", "120s", "--checks", "2", "--error-limit", "6", "--failure-limit", "3"]
    argv += ["--inconclusive-limit", "9"]
    argv += ["--no-write-spec", "-o", "json"]
    argv += ["--state-dir", str(previous_node.state_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=840, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "real node bj-edge-01's ASR replicas" in done.stderr
    status = json.loads(done.stdout)
    assert status["phase"] == "promoted"
    assert set(TURN_CHECKS) <= set(status["thresholds"]["extra"])
    judged = [m for m in status["analysis"] if m["result"] == "success"]
    # every success read the real turns and the word error rate of both tracks
    assert judged and all(set(m["metrics"]) >= set(TURN_CHECKS) for m in judged), status["analysis"]
    assert all(set(m["metrics"][name]) == {"stable", "canary"} for m in judged for name in TURN_CHECKS)
    record = _record(previous_node)
    stable = _stable(record)
    assert stable["image"] == current and stable["url"] == before["url"] and stable["pid"] != before["pid"]
    assert "canary" not in record["asr_tracks"] and not _alive(int(before["pid"]))
    assert _alive(int(stable["pid"])) and int(stable["pid"]) in record["pids"]
    catalog = load_catalog()
    image = catalog.get("asr")
    release = image.release(image.info.version)
    assert release is not None and record["images"]["asr"] == image.pinned(release)
    assert {k.rsplit("-", 1)[0] for k in record["services"]} == {
        "vad", "asr", "tts", "loadgen", "probe", "llm", "xiaozhi-server", "balancer"
    }  # fmt: skip
