"""The load generator's split of the devices' ASR turns between tracks."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from xz_inference.loadgen import AsrTarget, LoadGenerator

STABLE = AsrTarget("http://127.0.0.1:1", "stable", "asr:1", 0.5)
CANARY = AsrTarget("http://127.0.0.1:2", "canary", "asr:2", 0.5)


def _generator(targets: list[AsrTarget]) -> LoadGenerator:
    return LoadGenerator({"vad": "http://127.0.0.1:3", "tts": "http://127.0.0.1:4", "asr": [vars(t) for t in targets]})


def test_a_canary_step_pairs_the_tracks_on_the_same_utterances() -> None:
    gen, rng = _generator([STABLE, CANARY]), random.Random(7)
    rounds = [gen.plan(rng) for _ in range(200)]
    assert all(len(r) == 2 and r[0][0] == r[1][0] and {t.track for _, t in r} == {"stable", "canary"} for r in rounds)
    per_track = {track: Counter(u for r in rounds for u, t in r if t.track == track) for track in ("stable", "canary")}
    assert per_track["stable"] == per_track["canary"]  # the same audio, as often, on both tracks
    firsts = Counter(r[0][1].track for r in rounds)
    assert 60 <= firsts["canary"] <= 140, firsts  # neither track always hears it first


@pytest.mark.parametrize(
    ("targets", "share"),
    [
        ([STABLE], {"stable": 1.0}),
        ([AsrTarget(STABLE.url, "stable", "asr:1", 0.9), AsrTarget(CANARY.url, "canary", "asr:2", 0.1)], {"stable": 0.9}),
    ],
    ids=["one-track", "unequal-weights"],
)
def test_other_splits_draw_one_target_a_turn_by_weight(targets: list[AsrTarget], share: dict[str, float]) -> None:
    gen, rng = _generator(targets), random.Random(3)
    rounds = [gen.plan(rng) for _ in range(1000)]
    assert all(len(r) == 1 for r in rounds)
    drawn = Counter(r[0][1].track for r in rounds)
    assert abs(drawn["stable"] / 1000 - share["stable"]) < 0.05, drawn
