"""The real node's upstream xiaozhi server: its override (decisions, fast), then the real server in the sandbox
(tier images): a device speaking the real protocol gets its transcript and reply audio; a bad token is refused
while another device carries on; a malformed Opus frame is dropped; the auth key stays out of status and logs;
the probe's turns reach Prometheus; TTS down and the server killed mid-turn end the turn failed in bounded time.
The two destructive tests come last in this module (they stop parts of the session's real node)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.fixtures.sandbox import wait_for_query
from tests.fixtures.xiaozhi import DEVICE_TIMEOUT, SERVER_PROCESSES, device, services
from xzctl.errors import BadInputError
from xzctl.images.catalog import load_catalog
from xzctl.loadtest.device import DeviceError, TurnResult
from xzctl.loadtest.speech import speak
from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.render import render_node_documents
from xzctl.sandbox import SandboxInfo
from xzctl.sandbox.served import LLM_STANDIN
from xzctl.sandbox.xiaozhi import RENDERED_ASR, find_source, server_override
from xzctl.spec import Fleet

SPEECH = "turn on the light in the kitchen"
FAULT_BOUND = DEVICE_TIMEOUT + 15.0  # speech, then at most the device's reply timeout


def _override(
    fleet: Fleet,
    *,
    asr_provider: str = RENDERED_ASR,
    asr_http: str | None = None,
    front: tuple[int, int] | None = None,
) -> Any:
    """bj-edge-01's override at fixed sandbox addresses (ASR ws 1001, TTS 1002, LLM 1003; server 2001/2002)."""
    rendered = render_node_documents(fleet, fleet.node("bj-edge-01")).server_config
    return server_override(
        rendered,
        port=2001,
        http_port=2002,
        auth_key="k" * 48,
        asr_ws="ws://127.0.0.1:1001",
        tts="http://127.0.0.1:1002",
        llm="http://127.0.0.1:1003",
        asr_provider=asr_provider,
        asr_http=asr_http,
        front=front,
    )


def test_override_points_every_provider_at_the_sandbox(example_fleet: Fleet) -> None:
    rendered = render_node_documents(example_fleet, example_fleet.node("bj-edge-01")).server_config
    config = _override(example_fleet)
    modules = config["selected_module"]
    assert config["server"]["ip"] == "127.0.0.1"
    assert (config["server"]["port"], config["server"]["http_port"], config["server"]["auth_key"]) == (
        2001,
        2002,
        "k" * 48,
    )
    assert config["server"]["websocket"] == "ws://127.0.0.1:2001/xiaozhi/v1/"
    # behind a balancer, the OTA answer names the balancer's WebSocket; the server still listens on its own ports
    behind = _override(example_fleet, front=(3001, 3002))["server"]
    assert (behind["port"], behind["http_port"]) == (2001, 2002)
    assert behind["websocket"] == "ws://127.0.0.1:3001/xiaozhi/v1/"
    assert behind["vision_explain"] == "http://127.0.0.1:3002/mcp/vision/explain"
    # the rendered providers, at the sandbox's addresses: fun_server on the replica's FunASR WebSocket
    asr = config["ASR"][modules["ASR"]]
    assert (asr["type"], asr["host"], asr["port"], asr["is_ssl"]) == ("fun_server", "127.0.0.1", 1001, False)
    tts = config["TTS"][modules["TTS"]]
    assert (tts["url"], tts["format"], tts["params"]["response_format"]) == (
        "http://127.0.0.1:1002/v1/audio/speech",
        "wav",
        "wav",
    )
    assert config["LLM"][modules["LLM"]]["base_url"] == "http://127.0.0.1:1003/v1"
    assert config["VAD"] == yaml.safe_load(rendered)["VAD"]  # what the node renders, unchanged
    assert "example" not in json.dumps(config)  # no address of the rendered site is left


@pytest.mark.parametrize(
    ("provider", "asr_http", "block"),
    [
        (
            "fun_server",
            None,
            {
                "type": "fun_server",
                "host": "127.0.0.1",
                "port": 1001,
                "is_ssl": False,
                "api_key": "none",
                "output_dir": "tmp/",
            },
        ),
        (
            "openai",
            "http://127.0.0.1:1004",
            {
                "type": "openai",
                "base_url": "http://127.0.0.1:1004/v1/audio/transcriptions",
                "model_name": "xzctl-asr",
                "api_key": "none",
                "output_dir": "tmp/",
            },
        ),
    ],
)
def test_override_points_asr_at_the_chosen_provider(
    example_fleet: Fleet, provider: str, asr_http: str | None, block: dict[str, object]
) -> None:
    config = _override(example_fleet, asr_provider=provider, asr_http=asr_http)
    assert config["ASR"][config["selected_module"]["ASR"]] == block


@pytest.mark.parametrize(
    ("provider", "asr_http", "error"),
    [("whisper_local", "http://127.0.0.1:1004", "reaches no endpoint"), ("openai", None, "needs the replica's HTTP")],
)
def test_override_refuses_an_asr_provider_it_cannot_wire(
    example_fleet: Fleet, provider: str, asr_http: str | None, error: str
) -> None:
    with pytest.raises(BadInputError, match=error):
        _override(example_fleet, asr_provider=provider, asr_http=asr_http)


@pytest.mark.parametrize(
    ("layout", "error"),
    [
        ({"app.py": "", "config.yaml": ""}, None),
        ({"server/app.py": "", "config.yaml": ""}, None),  # the reference copy: config.yaml one level up
        ({"app.py": ""}, "no config.yaml"),
        ({"config.yaml": ""}, "no app.py"),
    ],
)
def test_source_directory(tmp_path: Path, layout: dict[str, str], error: str | None) -> None:
    for name, text in layout.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    root = tmp_path / "server" if "server/app.py" in layout else tmp_path
    if error is None:
        assert find_source(root) == (root, tmp_path / "config.yaml")
    else:
        with pytest.raises(BadInputError, match=error):
            find_source(root)


def test_no_source_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XZCTL_XIAOZHI_SOURCE", raising=False)
    with pytest.raises(BadInputError, match="needs the upstream source") as caught:
        find_source(None)
    assert caught.value.hint is not None and "--xiaozhi-source" in caught.value.hint


def _turn_ok(result: TurnResult) -> None:
    assert result.ok, result
    assert result.transcript  # the stt message carried the ASR's words
    assert result.audio_frames > 0
    assert result.stt_seconds is not None and result.first_audio_seconds is not None
    assert result.stt_seconds <= result.first_audio_seconds


def _status(info: SandboxInfo) -> subprocess.CompletedProcess[str]:
    """`xzctl sandbox status -o json` as an operator runs it."""
    argv = [sys.executable, "-m", "xzctl", "sandbox", "status", "-o", "json", "--state-dir", str(info.state_dir)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)


@pytest.mark.images
def test_a_device_speaking_the_real_protocol_gets_its_transcript_and_reply_audio(xiaozhi_sandbox: SandboxInfo) -> None:
    status = _status(xiaozhi_sandbox)
    real = json.loads(status.stdout)["real_node"]
    assert real["xiaozhi"]["websocket_url"].startswith("ws://127.0.0.1:")
    assert real["xiaozhi"]["websocket_url"].endswith("/xiaozhi/v1/")
    assert real["xiaozhi"]["ota_url"].endswith("/xiaozhi/ota/")
    assert {key.rsplit("-", 1)[0] for key in real["services"]} >= {
        "vad",
        "asr",
        "tts",
        "llm",
        "xiaozhi-server",
        "probe",
    }
    # what a capacity profile records: the turn path's image versions by digest (the tree's package is each
    # release's inputs), not its processes
    catalog = load_catalog()
    releases = {n: catalog.get(n).release(catalog.get(n).info.version) for n in ("xiaozhi-server", "asr", "tts")}
    pinned = {n: catalog.get(n).pinned(r) for n, r in releases.items() if r is not None}
    assert real["images"] == {**pinned, "llm": LLM_STANDIN}
    client = device(xiaozhi_sandbox, "aa:bb:cc:00:00:01")
    client.connect()
    try:
        result = client.turn(speak(SPEECH))
    finally:
        client.close()
    _turn_ok(result)
    # the figures of the closing note: one device, loaded 2-core machine
    sys.stdout.write(f"\none device: stt {result.stt_seconds:.2f} s, first audio {result.first_audio_seconds:.2f} s\n")


def _established(ports: list[int]) -> dict[int, int]:
    """Established TCP connections (on loopback, IPv4) whose local port is one of `ports`: the sockets a server
    process holds from the balancer."""
    held = dict.fromkeys(ports, 0)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].rsplit(":", 1)[1], 16)
        if port in held and fields[3] == "01":  # 01: ESTABLISHED
            held[port] += 1
    return held


@pytest.mark.images
def test_devices_spread_over_the_server_processes_and_each_gets_its_reply(xiaozhi_sandbox: SandboxInfo) -> None:
    ports = [urlsplit(s["url"]).port or 0 for s in services(xiaozhi_sandbox, "xiaozhi-server")]
    assert len(ports) == SERVER_PROCESSES
    clients = [device(xiaozhi_sandbox, f"aa:bb:cc:00:01:0{i}") for i in range(SERVER_PROCESSES)]
    try:
        for client in clients:  # each one's OTA token, from whichever process answered, opens its WebSocket
            client.connect()
        held = _established(ports)
        assert all(held.values()), held  # the balancer gave each process a session (the probe's may be one)
        for client in clients:
            _turn_ok(client.turn(speak(SPEECH)))
    finally:
        for client in clients:
            client.close()


@pytest.mark.images
def test_a_bad_token_is_refused_while_another_device_carries_on(xiaozhi_sandbox: SandboxInfo) -> None:
    good = device(xiaozhi_sandbox, "aa:bb:cc:00:00:02")
    good.connect()
    try:
        intruder = device(xiaozhi_sandbox, "aa:bb:cc:00:00:03")
        assert good.token
        for token in (good.token, "forged.1700000000", ""):  # another device's token, a forged one, none
            with pytest.raises(DeviceError) as refused:
                intruder.connect(token=token)
            assert refused.value.failure == "auth"
        _turn_ok(good.turn(speak(SPEECH)))
    finally:
        good.close()


@pytest.mark.images
def test_a_malformed_opus_frame_is_dropped(xiaozhi_sandbox: SandboxInfo) -> None:
    client = device(xiaozhi_sandbox, "aa:bb:cc:00:00:04")
    client.connect()
    try:
        _turn_ok(client.turn(speak(SPEECH), before_speech=[b"\xff\xfe not opus", b"\x00" * 4000]))
    finally:
        client.close()


@pytest.mark.images
def test_the_auth_key_is_never_in_status_state_or_logs(xiaozhi_sandbox: SandboxInfo) -> None:
    assert xiaozhi_sandbox.real_node is not None
    configs = [Path(d) / "data" / ".config.yaml" for d in xiaozhi_sandbox.real_node["server_dirs"]]
    assert len(configs) == SERVER_PROCESSES
    assert all(c.stat().st_mode & 0o077 == 0 for c in configs)  # each server's copy is its owner's alone
    keys = {yaml.safe_load(c.read_text())["server"]["auth_key"] for c in configs}
    assert len(keys) == 1  # one key for the node's processes: a token from any opens a socket on any
    key = keys.pop()
    assert len(key) >= 32
    status = _status(xiaozhi_sandbox)
    assert key not in status.stdout + status.stderr
    leaks = [
        p
        for p in Path(xiaozhi_sandbox.state_dir).rglob("*")
        if p.is_file()
        and p not in configs
        and p.suffix in (".log", ".json", ".yaml", ".yml")
        and key in p.read_text(errors="replace")
    ]
    assert not leaks


@pytest.mark.images
def test_the_probe_turns_reach_prometheus_for_the_canary_checks(xiaozhi_sandbox: SandboxInfo) -> None:
    node = {c.NODE: "bj-edge-01"}
    first_audio = q.turn_latency_quantile(c.TURN_FIRST_AUDIO_SECONDS, window="5m", by=(c.NODE, c.TRACK), filters=node)
    samples = wait_for_query(
        xiaozhi_sandbox.prometheus_url,
        first_audio,
        lambda s: bool(s) and all(not math.isnan(x.value) and x.value > 0 for x in s),
        timeout=240,
    )
    assert {s.labels[c.TRACK] for s in samples} == {"stable"}
    failures = wait_for_query(xiaozhi_sandbox.prometheus_url, q.turn_failure_ratio(window="5m", filters=node), bool)
    assert all(0 <= s.value <= 1 for s in failures)


def _turn_while(xiaozhi_sandbox: SandboxInfo, device_id: str, fault: str) -> tuple[TurnResult, float]:
    """A turn during which every process of service `fault` is killed (while the device speaks, each with its
    process group); the result and its duration."""
    client = device(xiaozhi_sandbox, device_id)
    client.connect()
    results: list[TurnResult] = []
    started = time.monotonic()
    speaking = threading.Thread(target=lambda: results.append(client.turn(speak(SPEECH))))
    speaking.start()
    try:
        time.sleep(0.5)  # mid-turn: the device is still speaking its 2 s utterance
        for process in services(xiaozhi_sandbox, fault):
            os.killpg(int(process["pid"]), signal.SIGKILL)
        speaking.join(FAULT_BOUND + 30)
    finally:
        client.close()
    assert results, "the turn did not end"
    return results[0], time.monotonic() - started


@pytest.mark.images
def test_tts_down_mid_turn_fails_the_turn_in_bounded_time(xiaozhi_sandbox: SandboxInfo) -> None:
    result, took = _turn_while(xiaozhi_sandbox, "aa:bb:cc:00:00:05", "tts")
    assert not result.ok and result.failure == "no_audio", result
    assert result.transcript  # ASR still worked: upstream's TTS error path ended the reply without audio
    assert took < FAULT_BOUND


@pytest.mark.images
def test_killing_the_server_mid_turn_ends_the_turn_failed(xiaozhi_sandbox: SandboxInfo) -> None:
    # every process: the balancer put the device on one of them
    result, took = _turn_while(xiaozhi_sandbox, "aa:bb:cc:00:00:06", "xiaozhi-server")
    assert not result.ok and result.failure in ("closed", "error"), result
    assert took < FAULT_BOUND
