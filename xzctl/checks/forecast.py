"""Forecast devices per region from weeks of hourly history, and what the forecast asks of the fleet.

The model of each region is chosen by a rolling-origin backtest among statsforecast's candidates, the seasonal
naive always among them (xzctl.checks.forecast_models); the history's gaps, resets and step changes are repaired
and reported (xzctl.checks.forecast_history); the spec's known events (holidays, campaigns) are divided out of the
history and multiplied into the forecast. Load (requests/s) follows the devices at the requests per device of the
last week.

What the forecast asks: the spec's replicas carry the peak the history has seen, so an hour forecast at k x that
peak needs k x those replicas (the autoscaler keeps load per replica at its target). A region whose upper band
needs more than an autoscaler's max, or more device slots than its nodes have, is reported. The pre-scaling
schedule is, per HPA and hour of the week (UTC, 0 = Monday 00:00), the min replicas for the upper band of that
hour and the next, clamped to min..max: the autoscaler starts from there instead of chasing the morning ramp.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from xzctl.checks.forecast_history import HOUR, WEEK, History, clean, unusual_days, when
from xzctl.checks.forecast_models import MIN_HISTORY, SeriesForecast, forecast_series
from xzctl.errors import BadInputError, UnknownStateError
from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.metrics.history import MAX_HISTORY_DAYS
from xzctl.prom.client import PrometheusClient
from xzctl.prom.regions import per_region
from xzctl.spec.autoscaling import scaler
from xzctl.spec.events import KnownEvent
from xzctl.spec.models import Fleet, Region

SCHEMA_VERSION = 2  # 2: prescale_schedule by hour of week (168 values), devices.model/coverage/candidates
MAX_HISTORY_HOURS = MAX_HISTORY_DAYS * 24
EPOCH_HOUR_OF_WEEK = 3 * 24  # 1970-01-01 00:00 UTC was a Thursday: hour 72 of a week that starts on Monday


def hour_of_week(t: float) -> int:
    return (int(t // HOUR) + EPOCH_HOUR_OF_WEEK) % WEEK


def event_factors(events: Sequence[KnownEvent], region: str, start: float, hours: int) -> tuple[list[float], list[str]]:
    """The expected factor of each hour from `start` in `region`, and the names of the events that touch them."""
    factors, names = [1.0] * hours, []
    for event in events:
        if not event.applies_to(region):
            continue
        begin, end = event.span()
        first, last = max(0, math.ceil((begin - start) / HOUR)), min(hours, math.ceil((end - start) / HOUR))
        if first < last:
            names.append(event.name)
            for h in range(first, last):
                factors[h] *= event.factor
    return factors, names


@dataclass(frozen=True)
class LoadForecast:
    """Requests per second end to end: the devices forecast times the last week's requests per device."""

    requests_per_device: float
    values: list[float]
    lower: list[float]
    upper: list[float]


@dataclass
class RegionForecast:
    region: str
    devices_now: float
    observed_peak: float  # the last week's peak: what the spec's replicas carry
    devices: SeriesForecast
    load: LoadForecast | None
    peak_24h: float  # upper band
    peak_7d: float  # upper band over the horizon
    history_hours: int = 0  # hours the model fit on
    events: list[str] = field(default_factory=list)  # known events applied to the forecast (or divided out of history)
    replicas_needed: dict[str, int] = field(default_factory=dict)  # service -> at the horizon's upper peak
    replicas_max: dict[str, int] = field(default_factory=dict)
    device_slots: int = 0
    nodes: int = 0
    nodes_needed: int = 0
    notes: list[str] = field(default_factory=list)  # what the history and the backtest say, not a verdict
    warnings: list[str] = field(default_factory=list)
    week_upper: list[float] = field(default_factory=list)  # the next 168 hours' upper band: the schedule's input

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["week_upper"]
        for key in ("devices", "load"):
            if out[key] is not None:
                out[key] = {k: _round(v) for k, v in out[key].items()}
        return out


def _round(value: Any) -> Any:
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return round(value, 4) if isinstance(value, float) and math.isfinite(value) else value


@dataclass
class Forecast:
    horizon_hours: int
    start: float  # the first forecast hour (unix seconds, on the hour)
    regions: dict[str, RegionForecast]
    schedule: dict[str, dict[str, list[int]]]  # region -> HPA name -> min replicas per hour of week (UTC)
    unknown: dict[str, str] = field(default_factory=dict)  # region -> why it has no forecast (the others stand)

    @property
    def warnings(self) -> list[str]:
        return [w for r in self.regions.values() for w in r.warnings]

    @property
    def notes(self) -> list[str]:
        return [n for r in self.regions.values() for n in r.notes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "horizon_hours": self.horizon_hours,
            "start": self.start,
            "regions": {n: r.to_dict() for n, r in self.regions.items()},
            "prescale_schedule": self.schedule,
            "prescale_hours": "hour of week, UTC: 0 is Monday 00:00",
            "notes": self.notes,
            "warnings": self.warnings,
            "unknown_regions": self.unknown,
        }


def _scale(replicas: int, devices: float, peak: float) -> int:
    return replicas if peak <= 0 else math.ceil(replicas * devices / peak - 0.02)


def _load(devices: SeriesForecast, history: Sequence[float], load: Sequence[float] | None) -> LoadForecast | None:
    if not load:
        return None
    week = [(lo, d) for lo, d in zip(load[-WEEK:], history[-WEEK:], strict=False) if d > 0]
    if not week:
        return None
    per_device = statistics.median(lo / d for lo, d in week)
    return LoadForecast(
        per_device, *([v * per_device for v in s] for s in (devices.values, devices.lower, devices.upper))
    )


def _scaled(forecast: SeriesForecast, factors: Sequence[float]) -> SeriesForecast:
    """The forecast times `factors`, hour by hour, cut to as many hours as there are factors."""
    from dataclasses import replace

    def times(values: list[float]) -> list[float]:
        return [v * f for v, f in zip(values, factors, strict=False)]

    return replace(forecast, values=times(forecast.values), lower=times(forecast.lower), upper=times(forecast.upper))


def region_forecast(
    region: Region,
    history: History,
    load: Sequence[float] | None,
    horizon: int,
    events: Sequence[KnownEvent] = (),
) -> RegionForecast:
    """The forecast of one region from its hourly devices (and load) history, and what it asks of the region."""
    fit = history.fit_values
    fit_start = history.start + history.fit_from * HOUR
    past, past_events = event_factors(events, region.name, fit_start, len(fit))
    start = history.start + len(history.values) * HOUR
    # A week at least: the pre-scaling schedule covers every hour of the week.
    ahead = max(horizon, WEEK)
    coming, coming_events = event_factors(events, region.name, start, ahead)
    usual, unusual = unusual_days([v / f for v, f in zip(fit, past, strict=True)], fit_start)
    raw = forecast_series(usual, ahead, judged_at=horizon)
    devices = _scaled(raw, coming)
    observed = max(history.values[-WEEK:])
    notes = history.notes(region.name) + [f"{region.name}: {n}" for n in devices.notes]
    for t, factor in unusual:
        notes.append(
            f"{region.name}: {when(t)} UTC and the 23 h after are x{factor:.2f} the same weekday of other weeks "
            "(an event?): not learned from; a known event that comes back belongs in known_events"
        )
    if past_events:
        notes.append(f"{region.name}: divided out of the history: {', '.join(past_events)}")
    shown = _scaled(devices, [1.0] * horizon)  # the horizon asked; the schedule reads the whole week
    out = RegionForecast(
        region=region.name,
        devices_now=history.values[-1],
        observed_peak=observed,
        devices=shown,
        load=_load(shown, history.values, load),
        peak_24h=max(shown.upper[:24]),
        peak_7d=max(shown.upper),
        history_hours=len(fit),
        events=sorted(set(past_events + coming_events)),
        device_slots=region.max_devices,
        nodes=len(region.edge_nodes),
        notes=notes,
    )
    out.week_upper = devices.upper[:WEEK]
    _needs(region, out)
    return out


def _needs(region: Region, out: RegionForecast) -> None:
    for node in region.edge_nodes:
        for name, svc in node.services.inference().items():
            if (auto := scaler(svc)) is None:
                continue
            need = _scale(svc.replicas, out.peak_7d, out.observed_peak)
            out.replicas_needed[name] = out.replicas_needed.get(name, 0) + need
            out.replicas_max[name] = out.replicas_max.get(name, 0) + auto.max
    for name, need in out.replicas_needed.items():
        if need > out.replicas_max[name]:
            out.warnings.append(
                f"{region.name}: {name} needs {need} replicas at the forecast peak ({out.peak_7d:.0f} devices), "
                f"above its autoscalers' max {out.replicas_max[name]}"
            )
    per_node = region.max_devices / len(region.edge_nodes)
    out.nodes_needed = math.ceil(out.peak_7d / per_node) if per_node else 0
    if out.nodes_needed > out.nodes:
        out.warnings.append(
            f"{region.name}: the forecast peak of {out.peak_7d:.0f} devices needs {out.nodes_needed} edge nodes, "
            f"it has {out.nodes}"
        )
    elif out.nodes_needed + 1 > out.nodes:
        out.warnings.append(
            f"{region.name}: the forecast peak of {out.peak_7d:.0f} devices fills {out.nodes_needed} of {out.nodes} "
            "edge nodes: no node to spare (N+1) at peak"
        )


def prescale_schedule(region: Region, forecast: RegionForecast, start: float) -> dict[str, list[int]]:
    """HPA name -> min replicas for each hour of the week (UTC, 0 = Monday 00:00), sized for the upper band."""
    upper = forecast.week_upper
    first = hour_of_week(start)
    by_hour = {(first + i) % WEEK: upper[i] for i in range(min(WEEK, len(upper)))}
    out: dict[str, list[int]] = {}
    for node in region.edge_nodes:
        for name, svc in node.services.inference().items():
            if (auto := scaler(svc)) is None:
                continue
            mins = []
            for hour in range(WEEK):
                # Hour h's minimum carries hour h+1 too: the replicas are up before the ramp, not during it.
                ahead = max(by_hour.get(hour, 0.0), by_hour.get((hour + 1) % WEEK, 0.0))
                need = _scale(svc.replicas, ahead, forecast.observed_peak)
                mins.append(min(auto.max, max(auto.min, need)))
            out[f"{node.id}-{name}"] = mins
    return out


def _hourly(points: Sequence[tuple[float, float]], start: float, hours: int) -> list[float]:
    """One value per hour from `start`, 0 where there is none (load only scales the devices forecast)."""
    by_hour = {round((t - start) / HOUR): v for t, v in points if math.isfinite(v)}
    return [by_hour.get(h, 0.0) for h in range(hours)]


@dataclass
class FetchedHistory:
    """Per region the hourly devices (repaired), requests/s and notes on the history; why the others are unknown."""

    devices: dict[str, History] = field(default_factory=dict)
    load: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)  # region -> why it has no forecast


def fetch_history(client: PrometheusClient, fleet: Fleet, *, hours: int | None, end: float) -> FetchedHistory:
    """Per region, two range queries (regions in parallel): its hourly devices and requests/s before `end`. A region
    whose Prometheus does not answer, or whose history is too short, is unknown; the others stand.

    `hours` None: as much as the history holds, up to five weeks.
    """
    if hours is not None and not MIN_HISTORY <= hours <= MAX_HISTORY_HOURS:
        raise BadInputError(f"history must be {math.ceil(MIN_HISTORY / 24)} to {MAX_HISTORY_HOURS // 24} days")
    asked = hours or MAX_HISTORY_HOURS
    end = float(int(end // HOUR) * HOUR)
    start = end - (asked - 1) * HOUR

    def region_history(name: str) -> tuple[History, list[float] | None, list[str]]:
        only = {c.REGION: name}
        devices_series = client.query_range(q.hourly_active_devices(filters=only), start, end, HOUR)
        load_series = client.query_range(q.hourly_request_rate(filters=only), start, end, HOUR)
        if not devices_series:
            raise UnknownStateError(f"no device history before {when(end)} UTC")
        history = clean(devices_series[0].points, start, asked, min_hours=MIN_HISTORY)
        if history.start + len(history.values) * HOUR <= end - HOUR:
            gap = round((end - history.start) / HOUR) - len(history.values) + 1
            raise UnknownStateError(f"the last {gap} hours before {when(end)} UTC have no history")
        notes = []
        if hours is not None and len(history.values) < hours - 24:
            notes.append(f"{name}: the history holds {len(history.values) // 24} of the {hours // 24} days asked")
        load = _hourly(load_series[0].points, history.start, len(history.values)) if load_series else None
        return history, load, notes

    split = per_region(list(fleet.regions), region_history)
    out = FetchedHistory(unknown={name: f"{name}: {why.message}" for name, why in split.failed.items()})
    for name, (history, load, notes) in split.answers.items():
        out.devices[name] = history
        if load is not None:
            out.load[name] = load
        if notes:
            out.notes[name] = notes
    return out


def build_forecast(
    fleet: Fleet,
    devices: Mapping[str, History],
    load: Mapping[str, list[float]],
    *,
    horizon: int,
    events: Sequence[KnownEvent] = (),
) -> Forecast:
    regions, schedule = {}, {}
    start = 0.0
    for name, region in fleet.regions.items():
        if name not in devices:  # unknown: no history to forecast from (Forecast.unknown says why)
            continue
        history = devices[name]
        start = history.start + len(history.values) * HOUR
        rf = region_forecast(region, history, load.get(name), horizon, events)
        regions[name] = rf
        schedule[name] = prescale_schedule(region, rf, start)
    return Forecast(horizon_hours=horizon, start=start, regions=regions, schedule=schedule)


def capacity_forecast(
    client: PrometheusClient,
    fleet: Fleet,
    *,
    history_hours: int | None,
    horizon: int,
    end: float,
    events: Sequence[KnownEvent] = (),
) -> Forecast:
    """`xzctl capacity forecast`: fetch the history before `end`, forecast every region, the pre-scaling schedule."""
    fetched = fetch_history(client, fleet, hours=history_hours, end=end)
    if not fetched.devices:
        raise UnknownStateError("no region has history to forecast from: " + "; ".join(fetched.unknown.values()))
    result = build_forecast(
        fleet, fetched.devices, fetched.load, horizon=horizon, events=[*fleet.known_events, *events]
    )
    result.unknown = fetched.unknown
    for name, said in fetched.notes.items():
        result.regions[name].notes[:0] = said
    return result


def prescale_files(fleet: Fleet, forecast: Forecast, image: str | None = None) -> dict[str, str]:
    """One YAML file per region of pre-scaling CronJobs (kubectl apply -f, or commit it to the GitOps tree)."""
    import yaml

    from xzctl.manifests.autoscaling import KUBECTL_IMAGE, prescale_objects

    files = {}
    for name, schedule in forecast.schedule.items():
        ns = fleet.regions[name].kubernetes.namespace
        objs = prescale_objects(fleet, ns, schedule, name, image or KUBECTL_IMAGE)
        files[f"{name}-prescale.yaml"] = yaml.safe_dump_all(objs, sort_keys=False)
    return files
