"""What a load test is: usage errors before anything starts, and when each device speaks."""

from __future__ import annotations

import random
from typing import Any

import pytest

from xzctl.errors import BadInputError
from xzctl.loadtest.settings import Arrivals, LoadSettings, first_delay, next_delay

WS, OTA = "ws://127.0.0.1:8000/xiaozhi/v1/", "http://127.0.0.1:8003/xiaozhi/ota/"


def settings(**changes: Any) -> LoadSettings:
    return LoadSettings(**{"ws_url": WS, "ota_url": OTA, "devices": 4, "duration": 90.0, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"devices": 0}, "--devices 0"),
        ({"devices": -3}, "--devices -3"),
        ({"duration": -5.0}, "--duration must be more than 0"),
        ({"duration": 0.0}, "--duration must be more than 0"),
        ({"turn_every": 0.0}, "--turn-every must be more than 0"),
        ({"ramp": 90.0}, "--ramp 90s must be at least 0 and shorter than --duration 90s"),
        ({"ramp": -1.0}, "--ramp -1s"),
        ({"turn_timeout": 0.0}, "--turn-timeout"),
        ({"ws_url": "http://127.0.0.1:8000/"}, "--url 'http://127.0.0.1:8000/' is not a ws/wss URL"),
        ({"ws_url": "ws://:8000/"}, "is not a ws/wss URL"),
        ({"ws_url": "ws://127.0.0.1:99999/"}, "is not a ws/wss URL"),
        ({"ota_url": "ws://127.0.0.1:8003/"}, "--ota-url 'ws://127.0.0.1:8003/' is not a http/https URL"),
    ],
)
def test_bad_settings_are_one_line_of_bad_input(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError) as caught:
        settings(**changes)
    assert message in caught.value.one_line()


def test_settings_travel_to_workers_as_a_dict() -> None:
    s = settings(arrivals=Arrivals.POISSON, corpus="/tmp/wavs", ramp=10.0)
    assert LoadSettings.from_dict({**s.to_dict(), "from_a_newer_master": 1}) == s
    assert s.spawn_rate == pytest.approx(0.4)
    assert settings().spawn_rate == 4.0  # no ramp: every device at once


def test_every_paces_one_turn_per_interval_out_of_phase() -> None:
    rng = random.Random(7)
    firsts = [first_delay(Arrivals.EVERY, 20.0, rng, 1000.0) for _ in range(200)]
    assert all(0 <= f < 20 for f in firsts) and max(firsts) - min(firsts) > 15  # spread over the interval
    assert next_delay(Arrivals.EVERY, 20.0, rng, 0.0, took=3.5) == 16.5
    assert next_delay(Arrivals.EVERY, 20.0, rng, 0.0, took=25.0) == 0.0  # a slow turn: the next one at once


def test_poisson_gaps_have_the_mean_of_the_interval() -> None:
    rng = random.Random(7)
    gaps = [next_delay(Arrivals.POISSON, 20.0, rng, 0.0, took=0.0) for _ in range(5000)]
    assert sum(gaps) / len(gaps) == pytest.approx(20.0, rel=0.05)
    assert min(gaps) < 1.0 and max(gaps) > 60.0  # exponential, not a fixed pace


@pytest.mark.parametrize("now", [1000.0, 1003.25, 1019.9])
def test_burst_puts_every_device_on_the_same_beat(now: float) -> None:
    rng = random.Random(1)
    starts = {round(now + first_delay(Arrivals.BURST, 20.0, rng, now), 6) for _ in range(10)}
    assert starts == {1020.0}
    assert now + next_delay(Arrivals.BURST, 20.0, rng, now, took=2.0) == pytest.approx(1020.0)
