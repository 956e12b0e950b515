"""The forecast of the fleet: what a region will need, the hour-of-week schedule, known events, the live path."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import pytest

from tests.fixtures.kubernetes_schema import validate_strict
from tests.fixtures.sandbox import HISTORY_GROUP, HISTORY_TIMEOUT
from xzctl.checks.forecast import (
    Forecast,
    build_forecast,
    capacity_forecast,
    event_factors,
    hour_of_week,
    prescale_files,
    region_forecast,
)
from xzctl.checks.forecast_history import HOUR, History
from xzctl.checks.forecast_models import NAIVE
from xzctl.cli import run
from xzctl.prom.client import PrometheusClient
from xzctl.sandbox import SandboxInfo
from xzctl.simulator.daily import hourly_active_devices
from xzctl.simulator.model import diurnal_activity
from xzctl.spec import Fleet
from xzctl.spec.events import KnownEvent

END = 1_780_000_000 // 3600 * 3600  # a fixed hour: the simulated history is a function of seed and clock
MONDAY = 4 * 86400  # 1970-01-05 00:00 UTC


def _history(values: list[float]) -> History:
    return History(start=END - (len(values) - 1) * HOUR, values=values)


@pytest.fixture(scope="module")
def next_week(example_fleet: Fleet) -> Forecast:
    simulated = hourly_active_devices(example_fleet, seed=3, end=END, hours=8 * 24)
    return build_forecast(example_fleet, {r: _history(v) for r, v in simulated.items()}, {}, horizon=7 * 24)


def test_every_region_is_forecast_by_the_backtests_choice(next_week: Forecast) -> None:
    assert next_week.start == END + HOUR
    for name, region in next_week.regions.items():
        devices = region.devices
        assert len(devices.values) == 7 * 24 and region.history_hours == 8 * 24
        assert NAIVE in devices.candidates and devices.candidates[devices.model] == devices.mape
        assert devices.model == NAIVE or devices.mape < devices.naive_mape  # a loser is never the forecast
        assert all(lo <= v <= hi for lo, v, hi in zip(devices.lower, devices.values, devices.upper, strict=True))
        assert 0 < region.peak_24h <= region.peak_7d < 2 * region.observed_peak, name
        assert any("weekly pattern is not modelled on 8 days" in n for n in region.notes)  # said, not hidden
    data = next_week.to_dict()
    assert data["schema_version"] == 2 and set(data["regions"]["beijing"]["devices"]) >= {"values", "upper", "lower"}
    assert set(data) >= {"start", "regions", "prescale_schedule", "notes", "warnings"}
    assert "week_upper" not in data["regions"]["beijing"]


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
    devices = _growing(300, 8 * 24, growth_per_day)
    beijing = region_forecast(example_fleet.regions["beijing"], _history(devices), None, 7 * 24)
    warnings = " ".join(beijing.warnings)
    assert ("above its autoscalers' max" in warnings) is replicas_warned
    assert ("needs" in warnings and "edge nodes, it has 3" in warnings) is nodes_warned
    if growth_per_day:
        assert beijing.devices.model != NAIVE  # the same hour a day ago lags the growth
        assert beijing.peak_7d > max(devices) * 1.1
        assert beijing.replicas_needed["asr"] > beijing.replicas_max["asr"] == 21


def test_the_schedule_covers_the_week_within_min_and_max(next_week: Forecast) -> None:
    asr = next_week.schedule["beijing"]["bj-edge-01-asr"]
    assert len(asr) == 7 * 24 and all(2 <= m <= 7 for m in asr)
    # China time 04:00 is 20:00 UTC (the trough), 16:00 is 08:00 UTC (the peak): scaled ahead of the ramp.
    for day in range(7):
        assert asr[day * 24 + 7] > asr[day * 24 + 20]
    assert set(next_week.schedule["beijing"]) == {f"bj-edge-0{i}-{s}" for i in (1, 2, 3) for s in ("asr", "tts", "llm")}


@pytest.mark.parametrize(("t", "how"), [(MONDAY, 0), (MONDAY + 7 * 3600, 7), (MONDAY - 3600, 167), (0, 72)])
def test_hour_of_week(t: float, how: int) -> None:
    assert hour_of_week(t) == how


def _event(start: str, end: str, factor: float, regions: list[str] | None = None) -> KnownEvent:
    return KnownEvent(
        name=f"event {start}",
        start=date.fromisoformat(start),
        end=date.fromisoformat(end),
        factor=factor,
        regions=regions or [],
    )


def test_event_factors_cover_the_event_days_of_its_regions() -> None:
    start = MONDAY  # 1970-01-05
    events = [_event("1970-01-06", "1970-01-06", 0.5), _event("1970-01-07", "1970-01-08", 2.0, ["shanghai"])]
    factors, names = event_factors(events, "beijing", start, 4 * 24)
    assert factors == [1.0] * 24 + [0.5] * 24 + [1.0] * 48 and names == ["event 1970-01-06"]
    factors, names = event_factors(events, "shanghai", start, 4 * 24)
    assert factors[48:] == [2.0] * 48 and len(names) == 2
    assert event_factors(events, "beijing", start + 10 * 86400, 24) == ([1.0] * 24, [])


def test_known_events_reach_the_forecast_and_the_schedule(example_fleet: Fleet) -> None:
    devices = _growing(300, 8 * 24, 0.0)
    region = example_fleet.regions["beijing"]
    plain = region_forecast(region, _history(devices), None, 7 * 24)
    day = date.fromtimestamp(END + 2 * 86400)
    campaign = _event(day.isoformat(), day.isoformat(), 1.5, ["beijing"])
    boosted = region_forecast(region, _history(devices), None, 7 * 24, [campaign])
    assert boosted.events == [campaign.name] and plain.events == []
    assert boosted.peak_7d == pytest.approx(1.5 * plain.peak_7d, rel=0.05)
    assert max(boosted.week_upper) > max(plain.week_upper)
    # The same campaign in the history: divided out, so the model does not learn a spike that will not recur.
    past = date.fromtimestamp(END - 3 * 86400)
    spiked = [
        v * 1.5 if date.fromtimestamp(END - (len(devices) - 1 - h) * HOUR) == past else v for h, v in enumerate(devices)
    ]
    seen = region_forecast(region, _history(spiked), None, 7 * 24, [_event(past.isoformat(), past.isoformat(), 1.5)])
    assert any("divided out of the history" in n for n in seen.notes)
    assert seen.peak_7d == pytest.approx(plain.peak_7d, rel=0.1)


def test_prescale_objects_are_valid_kubernetes(example_fleet: Fleet, next_week: Forecast) -> None:
    import yaml

    files = prescale_files(example_fleet, next_week)
    assert sorted(files) == [f"{r}-prescale.yaml" for r in sorted(example_fleet.regions)]
    objs = list(yaml.safe_load_all(files["beijing-prescale.yaml"]))
    jobs = {o["metadata"]["name"]: o for o in objs if o["kind"] == "CronJob"}
    for obj in [o for o in objs if o["kind"] != "CronJob"] + [jobs["beijing-prescale-mon-07"]]:
        validate_strict(obj)  # one CronJob stands for the others: they differ in numbers and names only
    assert {o["kind"] for o in objs} == {"ServiceAccount", "Role", "RoleBinding", "CronJob"}
    # Monday 07:00 UTC raises the minimums ahead of the peak; cron counts days from Sunday.
    monday = jobs["beijing-prescale-mon-07"]
    assert monday["spec"]["schedule"] == "0 7 * * 1"
    assert {n.split("-")[-2] for n in jobs} == {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    container = monday["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:4] == ["kubectl", "patch", "hpa", "bj-edge-01-asr"]


def test_production_needs_a_pinned_kubectl_image(tmp_path: Path, next_week: Forecast) -> None:
    from tests.fixtures.manifests import DIGEST, production_variant
    from xzctl.errors import BadInputError

    fleet = production_variant(tmp_path)
    with pytest.raises(BadInputError, match=r"pre-scaler: image .+ is not pinned by digest"):
        prescale_files(fleet, next_week)
    pinned = f"registry.k8s.io/kubectl{DIGEST}"
    assert pinned in prescale_files(fleet, next_week, pinned)["beijing-prescale.yaml"]


@pytest.mark.timeout(HISTORY_TIMEOUT)
@pytest.mark.xdist_group(HISTORY_GROUP)
def test_forecast_from_the_sandbox_history(
    example_fleet: Fleet, history_sandbox: SandboxInfo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Live: days backfilled into a real Prometheus, two range queries per region, a forecast per region, then the
    command."""
    box = history_sandbox
    assert box.history is not None
    end = box.history["end"]
    with PrometheusClient(box.prometheus_url, timeout=30, retries=1) as client:
        result = capacity_forecast(client, example_fleet, history_hours=None, horizon=24, end=end)
        assert client.query_count == 2 * len(example_fleet.regions)  # two range queries per region
    assert set(result.regions) == set(example_fleet.regions)
    for region in result.regions.values():
        assert 3 * 24 <= region.history_hours <= 5 * 24  # as much as the history holds, without --days
        assert region.devices.model == NAIVE or region.devices.mape < region.devices.naive_mape
        assert region.devices.mape <= 0.10 and not math.isnan(region.devices.coverage)
        assert 0 < region.peak_24h < region.device_slots
        assert any("judged 24 h ahead" in n or "weekly pattern" in n for n in region.notes)
    # The command, without --days, as of the history's end: JSON out, the schedule written as CronJobs per region.
    out = tmp_path / "prescale"
    argv = ["capacity", "forecast", "--prometheus", box.prometheus_url, "--horizon", "24h", "--at", str(end)]
    assert run([*argv, "--schedule-out", str(out), "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["horizon_hours"] == 24 and set(data["prescale_schedule"]) == set(example_fleet.regions)
    assert all(len(m) == 168 for s in data["prescale_schedule"].values() for m in s.values())
    assert sorted(p.name for p in out.glob("*.yaml")) == [f"{r}-prescale.yaml" for r in sorted(example_fleet.regions)]
    # As of a time before the history: said in one line, exit 3.
    assert run([*argv[:-1], str(end - 30 * 86400)]) == 3
    assert "no device history" in capsys.readouterr().err
