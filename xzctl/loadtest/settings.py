"""What a load test is: the target node's URLs, how many devices, when each device speaks, for how long.

Plain data (no Locust): the CLI validates it before anything starts, the master hands it to its workers as a dict.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from xzctl.errors import BadInputError

TURN_EVERY = 20.0  # seconds between a device's turns: the realistic rate (one turn per device per 20 s)
TURN_TIMEOUT = 30.0  # a reply not complete after this is a failed turn (the contract's top bucket)
MAX_DEVICES = 100_000  # a bound on the loop that spawns users, far above what one machine emulates
MAX_WORKERS = 64


class Arrivals(StrEnum):
    """When a device starts its next turn."""

    EVERY = "every"  # one turn per device per --turn-every, devices out of phase (a random first offset)
    POISSON = "poisson"  # a Poisson process per device with mean gap --turn-every
    BURST = "burst"  # every device at once, on the same wall-clock beat of --turn-every


@dataclass(frozen=True)
class LoadSettings:
    ws_url: str
    ota_url: str
    devices: int
    duration: float
    ramp: float = 0.0
    turn_every: float = TURN_EVERY
    arrivals: Arrivals = Arrivals.EVERY
    corpus: str | None = None  # a folder of WAVs; None: the built-in corpus
    turn_timeout: float = TURN_TIMEOUT
    track: str = "stable"

    def __post_init__(self) -> None:
        check_numbers(self.devices, self.duration, self.ramp, self.turn_every, self.turn_timeout)
        _check_url(self.ws_url, ("ws", "wss"), "--url")
        _check_url(self.ota_url, ("http", "https"), "--ota-url")

    @property
    def spawn_rate(self) -> float:
        """Devices started per second: all at once without a ramp."""
        return float(self.devices) if self.ramp == 0 else self.devices / self.ramp

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["arrivals"] = Arrivals(values.get("arrivals", Arrivals.EVERY))
        return cls(**values)


def check_numbers(devices: int, duration: float, ramp: float, turn_every: float, turn_timeout: float) -> None:
    """The run's numbers, checked before its target is looked up (a usage error needs no node)."""
    if not 1 <= devices <= MAX_DEVICES:
        raise BadInputError(f"--devices {devices}: give 1 to {MAX_DEVICES} devices")
    for flag, value in (("--duration", duration), ("--turn-every", turn_every), ("--turn-timeout", turn_timeout)):
        if value <= 0:
            raise BadInputError(f"{flag} must be more than 0 seconds, not {value:g}")
    if ramp < 0 or ramp >= duration:
        raise BadInputError(f"--ramp {ramp:g}s must be at least 0 and shorter than --duration {duration:g}s")


def check_workers(local: int, remote: int) -> None:
    for flag, n in (("--workers", local), ("--remote-workers", remote)):
        if not 0 <= n <= MAX_WORKERS:
            raise BadInputError(f"{flag} {n}: give 0 to {MAX_WORKERS} worker processes")


def _check_url(url: str, schemes: tuple[str, ...], flag: str) -> None:
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if parts.scheme not in schemes or not parts.hostname or not port_ok:
        raise BadInputError(
            f"{flag} {url!r} is not a {'/'.join(schemes)} URL", hint=f"e.g. {schemes[0]}://127.0.0.1:8000/"
        )


def first_delay(arrivals: Arrivals, every: float, rng: random.Random, now: float) -> float:
    """Seconds from a device's start to its first turn."""
    if arrivals is Arrivals.EVERY:
        return rng.uniform(0.0, every)
    if arrivals is Arrivals.POISSON:
        return rng.expovariate(1.0 / every)
    return _to_beat(every, now)


def next_delay(arrivals: Arrivals, every: float, rng: random.Random, now: float, took: float) -> float:
    """Seconds from the end of a turn (that took `took` seconds) to the device's next turn."""
    if arrivals is Arrivals.EVERY:
        return max(0.0, every - took)
    if arrivals is Arrivals.POISSON:
        return max(0.0, rng.expovariate(1.0 / every) - took)
    return _to_beat(every, now)


def _to_beat(every: float, now: float) -> float:
    # the wall clock, not the run's start: the devices of every worker process share the beat
    return every - (now % every)
