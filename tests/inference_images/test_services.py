"""The three services, run from the package as the sandbox runs them without images: ready only after a real
warm-up, answers the xiaozhi-facing protocol, counts requests and errors in the contract's metrics."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from xz_inference.asr_ws import funasr_client
from xz_inference.audio import read_wav
from xz_inference.corpus import word_errors, words

from xzctl import service_contract as sc
from xzctl.images.run import RunningService, start_service, stop_service, wait_ready

pytestmark = pytest.mark.images  # each service runs as a real process with its real model
TIMEOUT = 10.0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningService]]:
    state = tmp_path_factory.mktemp("state")
    os.environ.setdefault("XZCTL_IMAGE_CACHE", str(Path.home() / ".cache" / "xzctl" / "images"))
    started: dict[str, RunningService] = {}
    try:
        for name in ("vad", "asr", "tts"):
            env = {sc.REGION_ENV: "beijing", sc.NODE_ENV: "bj-edge-01", sc.TRACK_ENV: "canary"}
            # every endpoint on a free port through the contract's port variables (ASR's WebSocket too)
            others = {e.name: _free_port() for e in sc.SERVICES[name].endpoints[1:]}
            started[name] = start_service(
                name,
                port=_free_port(),
                state_dir=state,
                log_dir=state / "logs",
                env=env,
                prefer_image=False,
                ports=others,
            )
        for service in started.values():
            wait_ready(service, 120.0)
        yield started
    finally:
        for service in started.values():
            stop_service(service)


def _speech(text: str) -> bytes:
    return subprocess.run(["espeak-ng", "--stdout", "-v", "en-us", "--", text], capture_output=True, check=True).stdout


def test_vad_tells_speech_from_silence_per_session(services: dict[str, RunningService]) -> None:
    url = services["vad"].url
    silence = bytes(512 * 2 * 20)
    quiet = requests.post(
        f"{url}/v1/vad?session=s1", data=silence, headers={"Content-Type": "audio/l16"}, timeout=TIMEOUT
    )
    assert quiet.status_code == 200 and not any(quiet.json()["speech"])
    spoken = requests.post(
        f"{url}/v1/vad?session=s2",
        data=_speech("turn on the light in the kitchen"),
        headers={"Content-Type": "audio/wav"},
        timeout=TIMEOUT,
    )
    assert spoken.status_code == 200
    body = spoken.json()
    assert len(body["probabilities"]) == len(body["speech"]) > 20
    assert max(body["probabilities"]) > 0.5 and any(body["speech"])


def test_vad_refuses_a_partial_frame_and_counts_it_as_an_error(services: dict[str, RunningService]) -> None:
    url = services["vad"].url
    bad = requests.post(f"{url}/v1/vad", data=b"\0" * 100, headers={"Content-Type": "audio/l16"}, timeout=TIMEOUT)
    assert bad.status_code == 400 and "512" in bad.json()["error"]
    metrics = requests.get(f"{url}/metrics", timeout=TIMEOUT).text
    assert 'service="vad",track="canary",image="registry.xiaozhi.example/inference/vad:' in metrics
    assert 'result="error"} 1' in metrics


def test_asr_transcribes_the_openai_style_upload(services: dict[str, RunningService]) -> None:
    text = "set a timer for ten minutes"
    response = requests.post(
        f"{services['asr'].url}/v1/audio/transcriptions",
        files={"file": ("speech.wav", _speech(text), "audio/wav")},
        data={"model": "whisper-1"},
        timeout=60,
    )
    assert response.status_code == 200
    transcript = response.json()["text"]
    # Whisper tiny.en hears this espeak-ng sentence whole ("10" is scored as "ten")
    assert word_errors(words(text), words(transcript)) <= 1, transcript


@pytest.mark.parametrize(
    ("mode", "partial", "final"), [("offline", None, "offline"), ("2pass", "2pass-online", "2pass-offline")]
)
def test_asr_speaks_the_funasr_websocket_protocol_of_upstreams_fun_server_provider(
    services: dict[str, RunningService], mode: str, partial: str | None, final: str
) -> None:
    text = "turn off the light in the kitchen"
    pcm = read_wav(_speech(text)).tobytes()
    ws_url = services["asr"].ws_url
    assert ws_url is not None
    # 60 ms frames as a device streams them; offline mode is what fun_server sends (the whole PCM works the same)
    replies = funasr_client(ws_url, pcm, mode=mode, frame_bytes=1920, timeout=60)
    partials, last = replies[:-1], replies[-1]
    assert last["mode"] == final and last["is_final"] is True and last["wav_name"] == "client"
    assert word_errors(words(text), words(last["text"])) <= 1, last
    if partial is None:
        assert partials == []
    else:  # one partial per 0.6 s of audio at most, each the utterance heard so far
        assert 1 <= len(partials) <= len(pcm) // (2 * 9600)
        assert all(p["mode"] == partial and p["is_final"] is False for p in partials)
    metrics = requests.get(f"{services['asr'].url}/metrics", timeout=TIMEOUT).text
    assert 'xiaozhi_requests_total{region="beijing",node="bj-edge-01",service="asr"' in metrics


def test_asr_websocket_accepts_a_client_without_subprotocol_and_closes_on_a_bad_mode(
    services: dict[str, RunningService],
) -> None:
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    ws_url = services["asr"].ws_url
    assert ws_url is not None
    with connect(ws_url, open_timeout=TIMEOUT) as ws:
        assert ws.subprotocol is None
        ws.send(json.dumps({"mode": "streaming", "is_speaking": True}))
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    assert "mode 'streaming'" in closed.value.rcvd.reason


def test_tts_speaks_and_answers_repeats_from_the_phrase_cache(services: dict[str, RunningService]) -> None:
    url = services["tts"].url
    for _ in range(2):
        audio = requests.post(f"{url}/v1/audio/speech", json={"input": "你好，今天天气晴朗"}, timeout=TIMEOUT)
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    metrics = requests.get(f"{url}/metrics", timeout=TIMEOUT).text
    assert 'xiaozhi_cache_requests_total{region="beijing",node="bj-edge-01",tier="l1",result="hit"} 1' in metrics
    bad = requests.post(f"{url}/v1/audio/speech", data=json.dumps({"input": ""}), timeout=TIMEOUT)
    assert bad.status_code == 400


@pytest.mark.parametrize("name", ["vad", "asr", "tts"])
def test_metrics_show_model_load_time_once_ready(services: dict[str, RunningService], name: str) -> None:
    assert requests.get(f"{services[name].url}/ready", timeout=TIMEOUT).status_code == 200
    metrics = requests.get(f"{services[name].url}/metrics", timeout=TIMEOUT).text
    assert f'xiaozhi_model_load_seconds{{region="beijing",node="bj-edge-01",service="{name}"' in metrics


@pytest.mark.parametrize("name", sc.INFERENCE)
def test_each_service_answers_on_the_contract_paths(services: dict[str, RunningService], name: str) -> None:
    edge, url = sc.SERVICES[name], services[name].url  # listening where its contract port variable said
    for path in (edge.ready_path, edge.health_path):
        answer = requests.get(f"{url}{path}", timeout=TIMEOUT)
        assert answer.status_code == 200 and answer.json() == {"ready": True}, path
    assert edge.metrics_path is not None
    metrics = requests.get(f"{url}{edge.metrics_path}", timeout=TIMEOUT)
    assert metrics.status_code == 200 and f'service="{name}"' in metrics.text
    assert requests.get(f"{url}/healthz", timeout=TIMEOUT).status_code == 404  # what the manifests used to probe
    # the work path exists (an empty body is a bad request, not an unknown path)
    assert requests.post(f"{url}{edge.main.path}", data=b"", timeout=TIMEOUT).status_code == 400


def test_tts_answers_exactly_the_format_asked(services: dict[str, RunningService]) -> None:
    url = f"{services['tts'].url}{sc.TTS.main.path}"
    for audio_format in sc.TTS_FORMATS:
        body = {sc.TTS_TEXT_KEY: "好的", sc.TTS_FORMAT_KEY: audio_format}
        audio = requests.post(url, json=body, timeout=TIMEOUT)
        assert audio.status_code == 200 and audio.headers["Content-Type"] == f"audio/{audio_format}"
        assert audio.content[:4] == b"RIFF" and audio.content[8:12] == b"WAVE"
    # the local voice makes no MP3: asked for one, the service says so instead of sending WAV labelled MP3
    refused = requests.post(url, json={sc.TTS_TEXT_KEY: "好的", sc.TTS_FORMAT_KEY: "mp3"}, timeout=TIMEOUT)
    assert refused.status_code == 400 and "wav" in refused.json()["error"]
