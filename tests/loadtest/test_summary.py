"""One snapshot of the run's stats: the JSON the issue asks for and the contract's exposition."""

from __future__ import annotations

import re

from xzctl.loadtest.summary import FIRST_AUDIO, STT, TURN, Snapshot, Timing, cumulative, exposition, failure_kind
from xzctl.metrics import contract as c


def snapshot() -> Snapshot:
    fa = Timing(count=3, p50=1.2, p95=3.4, max=3.4, sum_seconds=5.8, buckets=cumulative({1200: 2, 3400: 1}))
    return Snapshot(
        4, 5, 2, {STT: Timing(3, 0.5, 0.9, 0.9, 1.9), FIRST_AUDIO: fa, TURN: fa}, {"timeout": 1, "closed": 1}, 90.0
    )


def test_json_has_the_issue_keys() -> None:
    data = snapshot().to_json()
    assert {k: data[k] for k in ("devices", "turns", "failed", "failures")} == {
        "devices": 4,
        "turns": 5,
        "failed": 2,
        "failures": {"closed": 1, "timeout": 1},
    }
    assert data["first_audio_seconds"] == {"p50": 1.2, "p95": 3.4, "max": 3.4}
    assert data["stt_seconds"]["p95"] == 0.9
    assert data["failed_ratio"] == 0.4
    empty = Snapshot(4, 0, 0, {}).to_json()
    assert empty["turn_seconds"] == {"p50": None, "p95": None, "max": None} and empty["failed_ratio"] == 0.0


def test_buckets_are_cumulative_at_the_contract_bounds() -> None:
    counts = dict(zip(c.TURN_BUCKETS, cumulative({240: 1, 1200: 2, 3400: 1, 45000: 1}), strict=True))
    assert (counts[0.25], counts[1.0], counts[1.5], counts[3.0], counts[4.0], counts[30.0]) == (1, 1, 3, 3, 4, 4)


def test_exposition_is_the_contract_with_track_and_counters() -> None:
    text = exposition(snapshot(), "canary")
    assert f'{c.TURN_FIRST_AUDIO_SECONDS.name}_bucket{{track="canary",le="1.5"}} 2' in text
    assert f'{c.TURN_FIRST_AUDIO_SECONDS.name}_bucket{{track="canary",le="+Inf"}} 3' in text
    assert f'{c.TURN_SECONDS.name}_count{{track="canary"}} 3' in text
    assert f'{c.TURNS.name}{{track="canary",result="ok"}} 3' in text
    assert f'{c.TURNS.name}{{track="canary",result="failed"}} 2' in text
    assert f'{c.TURN_FAILURES.name}{{track="canary",kind="timeout"}} 1' in text
    assert f'{c.TURN_FAILURES.name}{{track="canary",kind="auth"}} 0' in text  # every kind from the start: rate() works
    names = set(re.findall(r"^# TYPE (\S+)", text, re.M))
    assert names == {
        c.TURN_STT_SECONDS.name,
        c.TURN_FIRST_AUDIO_SECONDS.name,
        c.TURN_SECONDS.name,
        c.TURNS.name,
        c.TURN_FAILURES.name,
    }
    assert "region=" not in text and "node=" not in text  # target labels, as for every exporter of the contract


def test_a_device_reports_only_the_contract_kinds() -> None:
    assert [failure_kind(k) for k in ("timeout", "no_audio", 'x"} 1\nevil', None, 3)] == [
        "timeout",
        "no_audio",
        "error",
        "error",
        "error",
    ]


def test_progress_line_names_devices_turns_and_first_audio() -> None:
    line = snapshot().progress_line()
    assert "devices 4" in line and "turns 5" in line and "failed 2" in line and "p95 3.40s" in line
