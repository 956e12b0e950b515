"""Forecast devices and load per region from weeks of hourly history, and what the forecast asks of the fleet.

The model is statsmodels' Holt-Winters (ExponentialSmoothing): additive trend (the fleet's growth),
multiplicative seasonality of 24 hours (the daily swing grows with the fleet), fitted per region on hourly
values without the brute-force start search (a fit takes a fraction of a second). It is judged by a backtest
(each of the last three days of history held out and forecast 24 h ahead from the hours before it) beside a
naive forecast ("the same hour yesterday"); both MAPEs are reported. The error band is +/- 1.96 standard
deviations of the in-sample one-step residuals, widened by sqrt(1 + days ahead): an approximation of a 95 %
band that grows with the horizon.

What the forecast asks: the spec's replicas carry the peak the history has seen, so an hour forecast at k x that
peak needs k x those replicas (the autoscaler keeps load per replica at its target). A region whose upper band
needs more than an autoscaler's max, or more device slots than its nodes have, is reported. The pre-scaling
schedule is, per HPA and hour of day (UTC), the min replicas for the next hour's upper band, clamped to min..max:
the autoscaler starts from there instead of chasing the morning ramp.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from xzctl.errors import BadInputError, UnknownStateError
from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.prom.client import PrometheusClient
from xzctl.spec.autoscaling import scaler
from xzctl.spec.models import Fleet, Region

HOUR = 3600
SEASON_HOURS = 24
MIN_HISTORY_HOURS = 3 * SEASON_HOURS  # two seasons to fit, one more to hold out for the backtest
MAX_HISTORY_HOURS = 35 * SEASON_HOURS  # five weeks: enough seasons; bounded fit time and query size
MAX_MISSING_SHARE = 0.1  # more missing hours than this and the history says too little
Z95 = 1.96
BACKTEST_DAYS = 3  # one day is a noisy judge; three days of 24-h forecasts are a steadier one


@dataclass(frozen=True)
class SeriesForecast:
    """One hourly series forecast `len(values)` hours ahead, with its band and backtest errors."""

    values: list[float]
    lower: list[float]
    upper: list[float]
    mape: float  # backtest: each of the last days forecast 24 h ahead from the hours before it
    naive_mape: float  # same hour yesterday, on the same days


def _holt_winters(history: Sequence[float], horizon: int) -> tuple[list[float], float]:
    """Forecast `horizon` hours and the residual standard deviation of the fit."""
    import warnings

    import numpy as np
    from statsmodels.tsa.holtwinters import ExponentialSmoothing  # type: ignore[import-untyped]

    y = np.asarray(history, dtype=float)
    model = ExponentialSmoothing(
        y,
        trend="add",
        # Devices in a session are the population times the hour's activity: the daily swing grows with the
        # fleet, so the season multiplies. It needs values > 0; a region with empty hours falls back to adding.
        seasonal="mul" if float(y.min()) > 0 else "add",
        seasonal_periods=SEASON_HOURS,
        initialization_method="estimated",
    )
    with warnings.catch_warnings():
        # The optimizer's convergence chatter is not the operator's business; the backtest judges the fit.
        warnings.simplefilter("ignore")
        fit = model.fit(optimized=True, use_brute=False)
    resid = y - np.asarray(fit.fittedvalues, dtype=float)
    return [float(v) for v in fit.forecast(horizon)], float(np.std(resid))


def mape(actual: Sequence[float], predicted: Sequence[float]) -> float:
    """Mean absolute percentage error over the points whose actual value is not 0."""
    pairs = [(a, p) for a, p in zip(actual, predicted, strict=True) if a]
    if not pairs:
        return math.nan
    return sum(abs(a - p) / abs(a) for a, p in pairs) / len(pairs)


def backtest(history: Sequence[float], days: int = BACKTEST_DAYS) -> tuple[float, float]:
    """(model MAPE, naive MAPE) over the last `days` days, each forecast 24 h ahead from the hours before it."""
    days = min(days, len(history) // SEASON_HOURS - 2)  # keep two seasons to fit on
    model_errors, naive_errors = [], []
    for day in range(days, 0, -1):
        cut = len(history) - day * SEASON_HOURS
        held_out = history[cut : cut + SEASON_HOURS]
        predicted, _ = _holt_winters(history[:cut], SEASON_HOURS)
        model_errors.append(mape(held_out, predicted))
        naive_errors.append(mape(held_out, history[cut - SEASON_HOURS : cut]))
    return sum(model_errors) / len(model_errors), sum(naive_errors) / len(naive_errors)


def forecast_series(history: Sequence[float], horizon: int) -> SeriesForecast:
    if len(history) < MIN_HISTORY_HOURS:
        raise UnknownStateError(
            f"{len(history)} hours of history; the forecast needs at least {MIN_HISTORY_HOURS} (3 days)"
        )
    values, sigma = _holt_winters(history, horizon)
    widths = [Z95 * sigma * math.sqrt(1 + h / SEASON_HOURS) for h in range(horizon)]
    model_mape, naive_mape = backtest(history)
    return SeriesForecast(
        values=[max(0.0, v) for v in values],
        lower=[max(0.0, v - w) for v, w in zip(values, widths, strict=True)],
        upper=[max(0.0, v + w) for v, w in zip(values, widths, strict=True)],
        mape=model_mape,
        naive_mape=naive_mape,
    )


@dataclass
class RegionForecast:
    region: str
    devices_now: float
    observed_peak: float  # the history's peak: what the spec's replicas carry
    devices: SeriesForecast
    load: SeriesForecast | None  # requests per second, end to end
    peak_24h: float  # upper band
    peak_7d: float
    replicas_needed: dict[str, int] = field(default_factory=dict)  # service -> at the horizon's upper peak
    replicas_max: dict[str, int] = field(default_factory=dict)
    device_slots: int = 0
    nodes: int = 0
    nodes_needed: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("devices", "load"):
            if out[key] is not None:
                out[key] = {k: _round(v) for k, v in out[key].items()}
        return out


def _round(value: Any) -> Any:
    if isinstance(value, list):
        return [round(v, 2) for v in value]
    return round(value, 4) if isinstance(value, float) and not math.isnan(value) else value


@dataclass
class Forecast:
    horizon_hours: int
    start: float  # the first forecast hour (unix seconds, on the hour)
    regions: dict[str, RegionForecast]
    schedule: dict[str, dict[str, list[int]]]  # region -> HPA name -> min replicas per hour of day (UTC)

    @property
    def warnings(self) -> list[str]:
        return [w for r in self.regions.values() for w in r.warnings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "horizon_hours": self.horizon_hours,
            "start": self.start,
            "regions": {n: r.to_dict() for n, r in self.regions.items()},
            "prescale_schedule": self.schedule,
            "warnings": self.warnings,
        }


def _scale(replicas: int, devices: float, peak: float) -> int:
    return replicas if peak <= 0 else math.ceil(replicas * devices / peak - 0.02)


def region_forecast(
    region: Region, devices: Sequence[float], load: Sequence[float] | None, horizon: int
) -> RegionForecast:
    """The forecast of one region from its hourly devices (and load) history, and what it asks of the region."""
    dev = forecast_series(devices, horizon)
    observed = max(devices[-7 * SEASON_HOURS :])
    out = RegionForecast(
        region=region.name,
        devices_now=devices[-1],
        observed_peak=observed,
        devices=dev,
        load=forecast_series(load, horizon) if load is not None else None,
        peak_24h=max(dev.upper[:SEASON_HOURS]),
        peak_7d=max(dev.upper),
        device_slots=region.max_devices,
        nodes=len(region.edge_nodes),
    )
    for node in region.edge_nodes:
        for name, svc in node.services.inference().items():
            if (auto := scaler(svc)) is None:
                continue
            out.replicas_needed[name] = out.replicas_needed.get(name, 0) + _scale(svc.replicas, out.peak_7d, observed)
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
    return out


def prescale_schedule(region: Region, forecast: RegionForecast, start: float) -> dict[str, list[int]]:
    """HPA name -> min replicas for each hour of day (UTC), sized for the next hour's upper band."""
    upper = forecast.devices.upper
    first_hour = int(start // HOUR) % SEASON_HOURS
    # The upper band of the next 24 h, by hour of day; hour h's minimum carries hour h+1 (scale ahead).
    by_hour = {(first_hour + i) % SEASON_HOURS: upper[i] for i in range(min(SEASON_HOURS, len(upper)))}
    out: dict[str, list[int]] = {}
    for node in region.edge_nodes:
        for name, svc in node.services.inference().items():
            if (auto := scaler(svc)) is None:
                continue
            mins = []
            for hour in range(SEASON_HOURS):
                ahead = max(by_hour.get(hour, 0.0), by_hour.get((hour + 1) % SEASON_HOURS, 0.0))
                need = _scale(svc.replicas, ahead, forecast.observed_peak)
                mins.append(min(auto.max, max(auto.min, need)))
            out[f"{node.id}-{name}"] = mins
    return out


def _hourly(series: Mapping[str, list[tuple[float, float]]], start: float, hours: int) -> dict[str, list[float]]:
    """Per region, one value per hour from `start`; short gaps filled from the hour before, long ones refused."""
    out: dict[str, list[float]] = {}
    for region, points in series.items():
        by_hour = {round((t - start) / HOUR): v for t, v in points if math.isfinite(v)}
        missing = sum(1 for h in range(hours) if h not in by_hour)
        if missing > MAX_MISSING_SHARE * hours:
            raise UnknownStateError(f"{region}: {missing} of {hours} hours of history are missing")
        first = next(h for h in range(hours) if h in by_hour)
        values, last = [], by_hour[first]
        for h in range(hours):
            last = by_hour.get(h, last)
            values.append(last)
        out[region] = values
    return out


def fetch_history(
    client: PrometheusClient, fleet: Fleet, *, hours: int, end: float
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Hourly devices and end-to-end requests/s per region for the `hours` before `end` (two range queries)."""
    if not MIN_HISTORY_HOURS <= hours <= MAX_HISTORY_HOURS:
        raise BadInputError(f"history must be {MIN_HISTORY_HOURS // 24} to {MAX_HISTORY_HOURS // 24} days")
    end = float(int(end // HOUR) * HOUR)
    start = end - (hours - 1) * HOUR
    found = []
    for promql in (q.hourly_active_devices(), q.hourly_request_rate()):
        series = client.query_range(promql, start, end, HOUR)
        found.append(_hourly({s.labels.get(c.REGION, ""): s.points for s in series}, start, hours))
    devices, load = found
    missing = sorted(set(fleet.regions) - set(devices))
    if missing:
        raise UnknownStateError(f"no device history for region(s) {', '.join(missing)}")
    return devices, load


def build_forecast(
    fleet: Fleet, devices: Mapping[str, list[float]], load: Mapping[str, list[float]], *, horizon: int, start: float
) -> Forecast:
    regions, schedule = {}, {}
    for name, region in fleet.regions.items():
        rf = region_forecast(region, devices[name], load.get(name), horizon)
        regions[name] = rf
        schedule[name] = prescale_schedule(region, rf, start)
    return Forecast(horizon_hours=horizon, start=start, regions=regions, schedule=schedule)


def capacity_forecast(
    client: PrometheusClient, fleet: Fleet, *, history_hours: int, horizon: int, end: float
) -> Forecast:
    """`xzctl capacity forecast`: fetch the history, forecast every region, derive the pre-scaling schedule."""
    devices, load = fetch_history(client, fleet, hours=history_hours, end=end)
    start = float(int(end // HOUR) * HOUR) + HOUR
    return build_forecast(fleet, devices, load, horizon=horizon, start=start)


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
