"""The sandbox's scrape interval in Prometheus' duration form, sub-second included (short canary intervals)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xzctl.errors import BadInputError
from xzctl.sandbox import start_sandbox
from xzctl.sandbox.prometheus import scrape_config
from xzctl.spec import Fleet


@pytest.mark.parametrize(
    ("seconds", "interval", "timeout"),
    [(0.5, "500ms", "500ms"), (1, "1s", "1s"), (2.5, "2500ms", "2500ms"), (30, "30s", "10s")],
)
def test_scrape_interval_is_a_prometheus_duration(
    example_fleet: Fleet, seconds: float, interval: str, timeout: str
) -> None:
    config = scrape_config(example_fleet, 9, seconds)
    job = config["scrape_configs"][0]
    assert (config["global"]["scrape_interval"], job["scrape_interval"], job["scrape_timeout"]) == (
        interval,
        interval,
        timeout,
    )


@pytest.mark.parametrize("seconds", [0.2, 301])
def test_a_scrape_interval_out_of_range_is_refused_before_anything_starts(tmp_path: Path, seconds: float) -> None:
    with pytest.raises(BadInputError, match=r"scrape interval must be 0\.5\.\.300 seconds"):
        start_sandbox(None, tmp_path, scrape_interval_seconds=seconds)
    assert not (tmp_path / "sandbox").exists()
