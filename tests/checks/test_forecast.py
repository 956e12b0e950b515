"""The forecast: backtest error on the simulated daily pattern, what a growing region needs, the schedule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.fixtures.kubernetes_schema import validate_strict
from tests.fixtures.sandbox import HISTORY_GROUP
from xzctl.checks.forecast import (
    SEASON_HOURS,
    Forecast,
    _hourly,
    build_forecast,
    capacity_forecast,
    forecast_series,
    mape,
    prescale_files,
    region_forecast,
)
from xzctl.cli import run
from xzctl.errors import UnknownStateError
from xzctl.prom.client import PrometheusClient
from xzctl.sandbox import SandboxInfo
from xzctl.simulator.daily import hourly_active_devices
from xzctl.simulator.model import diurnal_activity
from xzctl.spec import Fleet

END = 1_780_000_000 // 3600 * 3600  # a fixed hour: the simulated history is a function of seed and clock


@pytest.fixture(scope="module")
def two_weeks(example_fleet: Fleet) -> dict[str, list[float]]:
    return hourly_active_devices(example_fleet, seed=3, end=END, hours=14 * SEASON_HOURS)


@pytest.fixture(scope="module")
def next_day(example_fleet: Fleet, two_weeks: dict[str, list[float]]) -> Forecast:
    return build_forecast(example_fleet, two_weeks, {}, horizon=24, start=END + 3600)


def test_backtest_on_14_days_of_simulated_history(two_weeks: dict[str, list[float]]) -> None:
    for region, history in two_weeks.items():
        result = forecast_series(history, 7 * SEASON_HOURS)
        assert result.mape <= 0.10, region
        assert result.mape < result.naive_mape, region  # beats "same hour yesterday"
        assert all(lo <= v <= hi for lo, v, hi in zip(result.lower, result.values, result.upper, strict=True))
        # The band widens with the horizon.
        assert result.upper[-1] - result.lower[-1] > result.upper[0] - result.lower[0]


def _growing(base: float, hours: int, growth_per_day: float) -> list[float]:
    start = END - hours * 3600
    return [
        base * (1 + growth_per_day * h / 24) * diurnal_activity(start + h * 3600) / 0.9 for h in range(1, hours + 1)
    ]


@pytest.mark.parametrize(
    ("growth_per_day", "replicas_warned", "nodes_warned"),
    [(0.0, False, False), (0.05, True, True)],
)
def test_a_growing_region_is_told_what_it_will_need(
    example_fleet: Fleet, growth_per_day: float, replicas_warned: bool, nodes_warned: bool
) -> None:
    """Beijing at 300 devices: flat it fits; +5 %/day outgrows max replicas and its 3 nodes."""
    devices = _growing(300, 14 * 24, growth_per_day)
    beijing = region_forecast(example_fleet.regions["beijing"], devices, None, 7 * 24)
    warnings = " ".join(beijing.warnings)
    assert ("above its autoscalers' max" in warnings) is replicas_warned
    assert ("needs" in warnings and "edge nodes, it has 3" in warnings) is nodes_warned
    if growth_per_day:
        assert beijing.peak_7d > max(devices) * 1.1
        assert beijing.replicas_needed["asr"] > beijing.replicas_max["asr"] == 21


def test_schedule_follows_the_day_within_min_and_max(next_day: Forecast) -> None:
    forecast = next_day
    asr = forecast.schedule["beijing"]["bj-edge-01-asr"]
    assert len(asr) == 24 and all(2 <= m <= 7 for m in asr)
    # China time 04:00 is 20:00 UTC (the trough), 16:00 is 08:00 UTC (the peak): scale ahead of the ramp.
    assert asr[20] == 2 and asr[7] >= 6 and asr[7] > asr[20]
    assert set(forecast.schedule["beijing"]) == {f"bj-edge-0{i}-{s}" for i in (1, 2, 3) for s in ("asr", "tts", "llm")}


def test_prescale_objects_are_valid_kubernetes(example_fleet: Fleet, next_day: Forecast) -> None:
    import yaml

    files = prescale_files(example_fleet, next_day)
    assert sorted(files) == [f"{r}-prescale.yaml" for r in sorted(example_fleet.regions)]
    objs = list(yaml.safe_load_all(files["beijing-prescale.yaml"]))
    for obj in objs:
        validate_strict(obj)
    jobs = [o for o in objs if o["kind"] == "CronJob"]
    assert jobs and {o["kind"] for o in objs} == {"ServiceAccount", "Role", "RoleBinding", "CronJob"}
    container = jobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:4] == ["kubectl", "patch", "hpa", "bj-edge-01-asr"]


def test_mape_and_history_gaps() -> None:
    assert mape([100, 200], [110, 180]) == pytest.approx(0.1)
    assert math.isnan(mape([0], [5]))
    start = 0.0
    points = [(h * 3600.0, float(h)) for h in range(100) if h != 50]
    assert _hourly({"r": points}, start, 100)["r"][50] == 49.0  # one missing hour: the hour before
    sparse = [(h * 3600.0, 1.0) for h in range(0, 100, 2)]
    with pytest.raises(UnknownStateError, match="50 of 100 hours"):
        _hourly({"r": sparse}, start, 100)
    with pytest.raises(UnknownStateError, match="needs at least 72"):
        forecast_series([1.0] * 48, 24)


@pytest.mark.xdist_group(HISTORY_GROUP)
def test_forecast_from_the_sandbox_history(
    example_fleet: Fleet, history_sandbox: SandboxInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Live: 4 days backfilled into a real Prometheus, two range queries, a forecast per region."""
    box = history_sandbox
    assert box.history is not None
    with PrometheusClient(box.prometheus_url, timeout=30, retries=1) as client:
        end = box.history["end"]
        result = capacity_forecast(client, example_fleet, history_hours=3 * 24 + 12, horizon=24, end=end)
        assert client.query_count == 2
    assert set(result.regions) == set(example_fleet.regions)
    for region in result.regions.values():
        assert region.devices.mape <= 0.10
        assert 0 < region.peak_24h < region.device_slots
    # The command: JSON out, the schedule written as CronJobs per region.
    out = tmp_path / "prescale"
    argv = ["capacity", "forecast", "--prometheus", box.prometheus_url, "--days", "3", "--horizon", "24h"]
    assert run([*argv, "--schedule-out", str(out), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["horizon_hours"] == 24 and set(data["prescale_schedule"]) == set(example_fleet.regions)
    assert sorted(p.name for p in out.glob("*.yaml")) == [f"{r}-prescale.yaml" for r in sorted(example_fleet.regions)]


def test_production_needs_a_pinned_kubectl_image(tmp_path: Path, next_day: Forecast) -> None:
    from tests.fixtures.manifests import DIGEST, production_variant
    from xzctl.errors import BadInputError

    fleet = production_variant(tmp_path)
    with pytest.raises(BadInputError, match=r"pre-scaler: image .+ is not pinned by digest"):
        prescale_files(fleet, next_day)
    pinned = f"registry.k8s.io/kubectl{DIGEST}"
    assert pinned in prescale_files(fleet, next_day, pinned)["beijing-prescale.yaml"]
