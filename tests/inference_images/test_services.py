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

from xz_inference.corpus import word_errors, words
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
            env = {"XZ_REGION": "beijing", "XZ_NODE": "bj-edge-01", "XZ_TRACK": "canary"}
            started[name] = start_service(
                name, port=_free_port(), state_dir=state, log_dir=state / "logs", env=env, prefer_image=False
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
    text = "what time is it now"
    response = requests.post(
        f"{services['asr'].url}/v1/audio/transcriptions",
        files={"file": ("speech.wav", _speech(text), "audio/wav")},
        data={"model": "pocketsphinx"},
        timeout=60,
    )
    assert response.status_code == 200
    transcript = response.json()["text"]
    # pocketsphinx's generic English model on synthetic speech is far from perfect; it must still hear words
    assert word_errors(words(text), words(transcript)) < len(words(text)), transcript


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
