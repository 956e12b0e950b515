"""One analysis measurement of a canary: PromQL on the canary track against the KPI and the stable track.

Both tracks are read on the same edge nodes (the canary nodes), so the stable track is the control group
under the same hardware and load. A few queries per measurement whatever the number of nodes (they
aggregate by track, or by node and track).

Fail closed: a node not scraped (up missing, NaN or 0), a missing series or an unreachable Prometheus is an
`error` (no verdict), never a success nor a skip. A track that finished no request in the window (its rates 0,
so its ratios and quantiles NaN) has no samples yet: a slow or little-used canary finishes few. Until the step's
samples span a whole window that is `pending` (waited for); after, the measurement reads every sample since the
step's deploy and warm-up, and with none there either it is `inconclusive`, counted against the step's
inconclusive limit (a pause for the operator): never a pass, and never an abort for missing data.

The checks are a registry (`CHECKS`): a new check (e.g. word error rate for ASR images) is one entry
plus its KPI in `Thresholds.extra[name]`; the engine never names a metric.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from xzctl.errors import BadInputError, UnknownStateError
from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient, Sample
from xzctl.rollout.state import Measurement, Result, Thresholds
from xzctl.spec.models import Fleet

Query = Callable[[str, str, q.Filters], str]  # (metric service, window, filters) -> PromQL by track


@dataclass(frozen=True)
class Check:
    """A metric judged canary vs KPI and vs stable. `kpi` None: the check does not apply."""

    name: str
    query: Query
    kpi: Callable[[Thresholds], float | None]
    vs_stable: Callable[[Thresholds], float]
    latency: bool = False  # latency fails over `vs_stable` even within the KPI; error ratios need both
    samples: Query | None = None  # a latency check's observations by track: compared with stable over enough of them


_BY_TRACK = (c.TRACK,)
CHECKS: dict[str, Check] = {
    "error_ratio": Check(
        "error_ratio",
        lambda s, w, f: q.error_ratio(s, window=w, by=_BY_TRACK, filters=f),
        lambda t: t.error_ratio,
        lambda t: t.errors_vs_stable,
    ),
    "inference_error_ratio": Check(
        "inference_error_ratio",
        lambda s, w, f: q.inference_error_ratio(s, window=w, by=_BY_TRACK, filters=f),
        lambda t: t.inference_error_ratio,
        lambda t: t.errors_vs_stable,
    ),
    "p95_seconds": Check(
        "p95_seconds",
        lambda s, w, f: q.p95_latency(s, window=w, by=_BY_TRACK, filters=f),
        lambda t: t.p95_seconds,
        lambda t: t.latency_vs_stable,
        latency=True,
        samples=lambda s, w, f: q.observations(c.REQUEST_DURATION, s, window=w, by=_BY_TRACK, filters=f),
    ),
    # ASR accuracy from a prober speaking known text (the real node's load generator): only when asked for, since
    # a node without a prober has no series, which fails closed like any missing data.
    "word_error_rate": Check(
        "word_error_rate",
        lambda _s, w, f: q.word_error_rate(window=w, by=_BY_TRACK, filters=f),
        lambda t: t.extra.get("word_error_rate"),
        lambda t: t.errors_vs_stable,
    ),
    # Real turns: devices (the real node's probe) speaking the real protocol through the xiaozhi server, from the
    # end of their speech to the first reply audio, and the share of their turns that failed. Only when asked
    # for: a node without a probe on both tracks has no series, which fails closed.
    "turn_first_audio_p95_seconds": Check(
        "turn_first_audio_p95_seconds",
        lambda _s, w, f: q.turn_latency_quantile(c.TURN_FIRST_AUDIO_SECONDS, window=w, by=_BY_TRACK, filters=f),
        lambda t: t.extra.get("turn_first_audio_p95_seconds"),
        lambda t: t.latency_vs_stable,
        latency=True,
        samples=lambda _s, w, f: q.observations(c.TURN_FIRST_AUDIO_SECONDS, window=w, by=_BY_TRACK, filters=f),
    ),
    "turn_failure_ratio": Check(
        "turn_failure_ratio",
        lambda _s, w, f: q.turn_failure_ratio(window=w, by=_BY_TRACK, filters=f),
        lambda t: t.extra.get("turn_failure_ratio"),
        lambda t: t.errors_vs_stable,
    ),
}


def thresholds_from_fleet(fleet: Fleet, metric_service: str) -> Thresholds:
    error_kpi = fleet.kpis.reliability.error_rate_percent / 100
    return Thresholds(
        error_ratio=error_kpi,
        p95_seconds=fleet.kpis.latency.by_service()[metric_service] / 1000,
        inference_error_ratio=fleet.alerts.model_inference_failure.error_ratio or error_kpi,
    )


def turn_kpis(fleet: Fleet) -> dict[str, float]:
    """The turn checks' KPIs (`Thresholds.extra`): first audio within the spec's end-to-end latency, failed turns
    under its error rate."""
    return {
        "turn_first_audio_p95_seconds": fleet.kpis.latency.end_to_end_ms / 1000,
        "turn_failure_ratio": fleet.kpis.reliability.error_rate_percent / 100,
    }


class NoSamplesError(UnknownStateError):
    """A scraped track finished no request in the window: its rates are 0, its ratios and quantiles NaN."""


def _by_track(samples: list[Sample], what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in samples:
        track = s.labels.get(c.TRACK, "")
        if s.is_nan:
            raise NoSamplesError(f"no {what} of the {track or '?'} track: nothing finished")
        if math.isinf(s.value):
            raise UnknownStateError(f"{what} of the {track or '?'} track is {s.value}")
        out[track] = s.value
    for track in c.TRACKS:
        if track not in out:
            raise UnknownStateError(f"no {what} for the {track} track")
    return out


def _label(name: str) -> str:
    return name.removesuffix("_seconds").replace("_", " ")  # p95_seconds -> p95, error_ratio -> error ratio


def _unit(name: str, value: float) -> str:
    """In the operator's units, as the KPIs are written: latency in ms, ratios in percent."""
    return f"{value * 1000:.0f} ms" if name.endswith("_seconds") else f"{value:.2%}"


def describe(name: str, value: float) -> str:
    """A check's threshold as the operator reads it, e.g. `turn first audio p95 3000 ms`."""
    return f"{_label(name)} {_unit(name, value)}"


class Analyzer:
    def __init__(
        self,
        prom: PrometheusClient,
        metric_service: str,
        thresholds: Thresholds,
        *,
        scrape_interval_seconds: float = 1.0,
        node_regions: Mapping[str, str] | None = None,
    ) -> None:
        self.prom = prom
        self.service = metric_service
        self.thresholds = thresholds
        # Queries also name the canary nodes' regions: behind Thanos Query they then reach only those regions'
        # Prometheus, so another region's lost Prometheus cannot fail the analysis.
        self.node_regions = dict(node_regions or {})
        # a rate needs two scrapes inside its window: the shortest window worth a first measurement
        self.min_window_seconds = max(2 * scrape_interval_seconds, 1.0)

    def unreachable(self, nodes: list[str]) -> list[str]:
        """Nodes Prometheus could not scrape at its last attempt (up missing, NaN or not 1)."""
        return self._not_up(nodes)

    def _not_up(self, nodes: list[str]) -> list[str]:
        samples = self.prom.query(q.node_up(by=(c.NODE,), filters=self._filters(nodes)))
        up = {s.labels.get(c.NODE): s.value for s in samples}
        return [n for n in nodes if up.get(n) != 1.0]

    def _filters(self, nodes: list[str]) -> q.Filters:
        regions = sorted({self.node_regions[n] for n in nodes if n in self.node_regions})
        return {c.NODE: nodes, **({c.REGION: regions} if regions else {})}

    def measure(
        self, step: int, nodes: list[str], window_seconds: float, since_seconds: float | None = None
    ) -> Measurement:
        """Judge the last `window_seconds`; a track with no samples there, or too few to compare a latency quantile
        with stable's (`Thresholds.min_samples`), is read again over `since_seconds`, every sample since the step's
        deploy and warm-up (the engine keeps both after them), and is `pending` while those span no more than the
        window, then inconclusive."""
        if window_seconds < 1:
            raise BadInputError("the analysis window must be at least 1s")
        at = time.time()
        # The step has samples beyond the window; else the window read was all of them (the engine shortens the
        # window to them), not yet a whole window.
        beyond = since_seconds is not None and math.floor(since_seconds) > math.floor(window_seconds)
        # too little data is waited for while the step is younger than its window, then counted as inconclusive
        unready = Result.PENDING if since_seconds is not None and not beyond else Result.INCONCLUSIVE
        whole = " (all of the step's)" if since_seconds is not None else ""
        try:
            try:
                metrics, result, reason = self._judged(nodes, window_seconds)
            except NoSamplesError:
                if since_seconds is None or not beyond:
                    raise
                result = Result.PENDING  # nothing in the window: read over the whole step below
            if result is Result.PENDING and since_seconds is not None and beyond:
                window_seconds = since_seconds
                metrics, result, reason = self._judged(nodes, window_seconds)
        except NoSamplesError as exc:
            reason = f"no samples yet: {exc.message} in the last {window_seconds:.0f} s{whole}"
            return Measurement(step=step, at=at, result=unready, reason=reason, window_seconds=window_seconds)
        except UnknownStateError as exc:
            return Measurement(
                step=step,
                at=at,
                result=Result.ERROR,
                reason=f"missing data: {exc.message}",
                window_seconds=window_seconds,
            )
        if result is Result.PENDING:
            reason = (
                f"too few samples yet to compare with stable: {reason} in the last {window_seconds:.0f} s{whole}; "
                f"a p95 needs {self.thresholds.min_samples} per track"
            )
            result = unready
        return Measurement(
            step=step, at=at, result=result, reason=reason, metrics=metrics, window_seconds=window_seconds
        )

    def _judged(self, nodes: list[str], window_seconds: float) -> tuple[dict[str, dict[str, float]], Result, str]:
        metrics, samples = self._read(nodes, f"{math.floor(window_seconds)}s")
        return metrics, *self.judge(metrics, samples)

    def _read(self, nodes: list[str], window: str) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        """The checks' values by track, and the observations behind each latency check's by track."""
        if not nodes:
            raise UnknownStateError("no canary node to measure")
        filters = self._filters(nodes)
        down = self._not_up(nodes)
        if down:
            raise UnknownStateError(f"canary node(s) {', '.join(down)} not scraped (up missing or != 1)")
        per_node = self.prom.query(q.request_rate(self.service, window=window, by=(c.NODE, c.TRACK), filters=filters))
        serving = {(s.labels.get(c.NODE), s.labels.get(c.TRACK)) for s in per_node if s.value > 0}
        silent = [f"{n}/{t}" for n in nodes for t in c.TRACKS if (n, t) not in serving]
        if silent:
            # a track that finished nothing (a slow or idle canary, a frozen exporter) looks healthy to a ratio
            raise NoSamplesError(f"no {self.service} request finished on {', '.join(silent)}")
        checks = {name: check for name, check in CHECKS.items() if check.kpi(self.thresholds) is not None}
        metrics = {
            name: _by_track(self.prom.query(check.query(self.service, window, filters)), name.replace("_", " "))
            for name, check in checks.items()
        }
        samples = {
            name: _by_track(self.prom.query(check.samples(self.service, window, filters)), f"{_label(name)} samples")
            for name, check in checks.items()
            if check.samples is not None
        }
        return metrics, samples

    def judge(
        self, metrics: dict[str, dict[str, float]], samples: Mapping[str, Mapping[str, float]] | None = None
    ) -> tuple[Result, str]:
        """success, failure (the canary is worse), inconclusive (the KPI is breached on both tracks), or pending: a
        canary latency quantile worse than stable's over fewer than `min_samples` observations of a track
        (`samples`) is no verdict yet, since one slow request of a lightly used track is its p95; only a KPI the
        canary alone breaches fails it then."""
        failures: list[str] = []
        inconclusive: list[str] = []
        few: list[str] = []
        for name, values in metrics.items():
            check = CHECKS[name]
            kpi, factor = check.kpi(self.thresholds), check.vs_stable(self.thresholds)
            assert kpi is not None  # only checks with a KPI were read
            canary, stable = values["canary"], values["stable"]
            text = (
                f"{_label(name)} canary {_unit(name, canary)} vs stable {_unit(name, stable)} (KPI {_unit(name, kpi)})"
            )
            worse = canary > stable * factor
            counts = (samples or {}).get(name) or {}
            sparse = bool(counts) and min(counts.values()) < self.thresholds.min_samples
            if canary > kpi >= stable or (canary > kpi and worse and not sparse):
                failures.append(text)
            elif worse and sparse:
                few.append(f"{_label(name)} from {counts['canary']:.0f} canary and {counts['stable']:.0f} stable")
            elif check.latency and worse:
                failures.append(f"{text}: over {factor:g}x stable")
            elif canary > kpi:
                inconclusive.append(f"{text}: stable breaches the KPI too")
        if failures:
            return Result.FAILURE, "; ".join(failures)
        if inconclusive:
            return Result.INCONCLUSIVE, "; ".join(inconclusive)
        if few:
            return Result.PENDING, ", ".join(few)
        p95, errors = metrics.get("p95_seconds"), metrics.get("error_ratio")
        parts = [f"p95 canary {p95['canary'] * 1000:.0f} ms vs stable {p95['stable'] * 1000:.0f} ms"] if p95 else []
        if errors:
            parts.append(f"errors canary {errors['canary']:.3%} vs stable {errors['stable']:.3%}")
        # the checks asked for by name (real turns, word error rate): what they read is what the operator asked
        parts += [
            f"{_label(name)} canary {_unit(name, values['canary'])} vs stable {_unit(name, values['stable'])}"
            for name, values in metrics.items()
            if name in self.thresholds.extra
        ]
        return Result.SUCCESS, ", ".join(parts) or "every check within its KPI"
