"""The service package's pure parts: the seed's chunking, word errors, the phrase cache, the metrics text."""

from __future__ import annotations

import numpy as np
import pytest
from xz_inference.asr import CHUNK, OVERLAP, windows
from xz_inference.corpus import word_errors, words
from xz_inference.metrics import Registry
from xz_inference.server import Handler, Request, Response, Service, serve
from xz_inference.tts import PhraseCache

from xzctl.metrics import contract as c


def test_windows_are_the_seeds_chunks_with_overlap_and_every_sample_is_new_once() -> None:
    samples = np.arange(5000, dtype=np.int16)
    parts = list(windows(samples))
    assert (CHUNK, OVERLAP) == (1600, 320)
    assert [len(w) for w, _ in parts] == [
        1600,
        1600,
        1600,
        1160,
    ]
    assert [w[0] for w, _ in parts] == [0, 1280, 2560, 3840]
    fresh = np.concatenate([w[len(w) - n :] for w, n in parts])
    assert np.array_equal(fresh, samples)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "errors"),
    [
        ("turn on the light", "turn on the light", 0),
        ("turn on the light", "turn the light", 1),  # deletion
        ("turn on the light", "turn on on the light", 1),  # insertion
        ("turn on the light", "burn on the night", 2),  # substitutions
        ("play some music", "", 3),
        ("", "noise", 1),
    ],
)
def test_word_errors_count_edits(reference: str, hypothesis: str, errors: int) -> None:
    assert word_errors(words(reference), words(hypothesis)) == errors


def test_words_ignore_case_and_punctuation() -> None:
    assert words("What's the Weather, today?") == ["what's", "the", "weather", "today"]


def test_phrase_cache_evicts_the_least_recent_and_stays_within_its_bytes() -> None:
    cache = PhraseCache(max_bytes=10)
    cache.put(("cmn", "a"), b"12345", "audio/wav")
    cache.put(("cmn", "b"), b"12345", "audio/wav")
    assert cache.get(("cmn", "a")) is not None  # a is now the most recent
    cache.put(("cmn", "c"), b"123", "audio/wav")
    assert cache.get(("cmn", "b")) is None and cache.get(("cmn", "a")) is not None
    assert cache.size <= 10
    cache.put(("cmn", "huge"), b"x" * 11, "audio/wav")
    assert cache.get(("cmn", "huge")) is None


def test_registry_renders_contract_names_labels_and_cumulative_buckets() -> None:
    base = {"region": "r", "node": "n", "service": "asr", "track": "canary", "image": "x/asr:1"}
    registry = Registry(base)
    registry.observe(c.REQUEST_DURATION, 0.02)
    registry.observe(c.REQUEST_DURATION, 0.3)
    registry.inc(c.REQUESTS, result="ok")
    registry.set(c.QUEUE_SIZE, 3)
    text = registry.render()
    labels = 'region="r",node="n",service="asr",track="canary",image="x/asr:1"'
    assert f'xiaozhi_request_duration_seconds_bucket{{{labels},le="0.025"}} 1' in text
    assert f'xiaozhi_request_duration_seconds_bucket{{{labels},le="0.3"}} 2' in text
    assert f'xiaozhi_request_duration_seconds_bucket{{{labels},le="+Inf"}} 2' in text
    assert f"xiaozhi_request_duration_seconds_count{{{labels}}} 2" in text
    assert f'xiaozhi_requests_total{{{labels},result="ok"}} 1' in text
    assert 'xiaozhi_processing_queue_size{region="r",node="n",service="asr"} 3' in text
    assert "# TYPE xiaozhi_request_duration_seconds histogram" in text
    with pytest.raises(KeyError, match="result"):
        registry.inc(c.REQUESTS)


class _StrayVad(Service):
    name = "vad"

    def routes(self) -> dict[str, Handler]:
        return {"/vad": self.detect}

    def detect(self, request: Request) -> Response:
        return Response.json({"bytes": len(request.body)})


def test_a_service_answering_off_its_contract_path_does_not_start() -> None:
    with pytest.raises(ValueError, match="the service contract says /v1/vad"):
        serve(_StrayVad(), "127.0.0.1", 0)
