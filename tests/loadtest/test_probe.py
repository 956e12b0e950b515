"""The turn probe's metrics (the contract's TURN_* series) and its reconnect decisions, with a fake device."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from xzctl.loadtest.device import DeviceClient, DeviceError, TurnResult, failed
from xzctl.loadtest.probe import TurnRecorder, probe_turn
from xzctl.metrics import contract as c

OK = TurnResult(True, None, 1.2, 1.8, 4.0, "hello")


def _value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, series
    return float(match.group(1))


def test_recorder_renders_the_contract_series() -> None:
    recorder = TurnRecorder("stable")
    for result in (OK, OK, failed("no_audio"), failed("auth")):
        recorder.record(result)
    text = recorder.render()
    assert _value(text, f'{c.TURNS.name}{{track="stable",result="ok"}}') == 2
    assert _value(text, f'{c.TURNS.name}{{track="stable",result="failed"}}') == 2
    assert _value(text, f'{c.TURN_FAILURES.name}{{track="stable",kind="no_audio"}}') == 1
    assert _value(text, f'{c.TURN_FAILURES.name}{{track="stable",kind="timeout"}}') == 0
    first = c.TURN_FIRST_AUDIO_SECONDS.name
    assert _value(text, f'{first}_bucket{{track="stable",le="1.5"}}') == 0
    assert _value(text, f'{first}_bucket{{track="stable",le="2"}}') == 2
    assert _value(text, f'{first}_bucket{{track="stable",le="+Inf"}}') == 2  # failed turns are not timed
    assert _value(text, f'{first}_sum{{track="stable"}}') == pytest.approx(3.6)
    for metric in (c.TURN_STT_SECONDS, c.TURN_FIRST_AUDIO_SECONDS, c.TURN_SECONDS, c.TURNS, c.TURN_FAILURES):
        assert f"# TYPE {metric.name} {metric.type.value}" in text


@dataclass
class FakeDevice:
    connects: list[str | None] = field(default_factory=list)  # None: connects, else the failure kind raised
    turns: list[TurnResult] = field(default_factory=list)
    session_id: str | None = None
    closed: int = 0

    def connect(self) -> None:
        failure = self.connects.pop(0)
        if failure is not None:
            raise DeviceError(failure, "refused")
        self.session_id = "s"

    def turn(self, _pcm: bytes) -> TurnResult:
        return self.turns.pop(0)

    def close(self) -> None:
        self.closed += 1


def test_probe_reconnects_after_a_failed_turn_and_counts_refusals() -> None:
    fake = FakeDevice(connects=[None, "auth", None], turns=[failed("closed"), OK])
    device: DeviceClient = fake  # type: ignore[assignment]
    assert probe_turn(device, b"").failure == "closed"
    assert fake.session_id is None  # a failed turn drops the connection
    assert probe_turn(device, b"") == failed("auth")
    assert probe_turn(device, b"") == OK
    assert fake.connects == [] and fake.closed == 2


def test_the_probe_is_ready_once_a_turn_was_answered() -> None:
    recorder = TurnRecorder("canary")
    assert not recorder.answered()
    recorder.record(failed("no_transcript"))
    assert not recorder.answered()  # a path that failed its turns is not ready to be judged
    recorder.record(OK)
    assert recorder.answered()
