"""One analysis measurement of a canary: PromQL on the canary track against the KPI and the stable track.

Both tracks are read on the same edge nodes (the canary nodes), so the stable track is the control group
under the same hardware and load. Four queries per measurement whatever the number of nodes (they
aggregate by track, or by node and track): request rate, error ratio, inference error ratio, p95 latency.

Fail closed: a missing series, NaN, a canary node that was not scraped or serves no canary traffic, or an
unreachable Prometheus is an `error` (no verdict), never a success.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from xzctl.errors import BadInputError, UnknownStateError
from xzctl.metrics import contract as c
from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient, Sample
from xzctl.rollout.state import Measurement
from xzctl.spec.models import Fleet

SUCCESS, FAILURE, INCONCLUSIVE, ERROR = "success", "failure", "inconclusive", "error"


@dataclass(frozen=True)
class Thresholds:
    error_ratio: float  # the error-rate KPI (0..1)
    p95_seconds: float  # the service's latency KPI
    inference_error_ratio: float
    latency_vs_stable: float = 1.5  # canary p95 this many times the stable p95 fails even within the KPI
    errors_vs_stable: float = 2.0  # canary error ratios must breach the KPI and be this many times stable's

    @classmethod
    def from_fleet(cls, fleet: Fleet, metric_service: str) -> Thresholds:
        error_kpi = fleet.kpis.reliability.error_rate_percent / 100
        return cls(
            error_ratio=error_kpi,
            p95_seconds=fleet.kpis.latency.by_service()[metric_service] / 1000,
            inference_error_ratio=fleet.alerts.model_inference_failure.error_ratio or error_kpi,
        )


def _by_track(samples: list[Sample], what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in samples:
        track = s.labels.get(c.TRACK, "")
        if s.is_nan or math.isinf(s.value):
            raise UnknownStateError(f"{what} of the {track or '?'} track is {s.value}")
        out[track] = s.value
    for track in c.TRACKS:
        if track not in out:
            raise UnknownStateError(f"no {what} for the {track} track")
    return out


class Analyzer:
    def __init__(
        self,
        prom: PrometheusClient,
        metric_service: str,
        thresholds: Thresholds,
        *,
        window_seconds: float,
    ) -> None:
        if window_seconds < 1:
            raise BadInputError("the analysis window must be at least 1s")
        self.prom = prom
        self.service = metric_service
        self.thresholds = thresholds
        self.window = f"{math.ceil(window_seconds)}s"

    def unreachable(self, nodes: list[str]) -> list[str]:
        """Nodes Prometheus could not scrape at its last attempt (up == 0), or never heard of."""
        samples = self.prom.query(q.node_up(by=(c.NODE,), filters={c.NODE: nodes}))
        up = {s.labels.get(c.NODE): s.value for s in samples}
        return [n for n in nodes if up.get(n) != 1.0]

    def measure(self, step: int, nodes: list[str]) -> Measurement:
        at = time.time()
        try:
            metrics = self._read(nodes)
        except UnknownStateError as exc:
            return Measurement(step, at, ERROR, f"missing data: {exc.message}")
        result, reason = self.judge(metrics)
        return Measurement(step, at, result, reason, metrics)

    def _read(self, nodes: list[str]) -> dict[str, dict[str, float]]:
        filters: q.Filters = {c.NODE: nodes}
        down = self.unreachable(nodes)
        if down:
            raise UnknownStateError(f"canary node(s) {', '.join(down)} not scraped (up != 1)")
        per_node = self.prom.query(
            q.request_rate(self.service, window=self.window, by=(c.NODE, c.TRACK), filters=filters)
        )
        serving = {(s.labels.get(c.NODE), s.labels.get(c.TRACK)) for s in per_node if s.value > 0}
        silent = [f"{n}/{t}" for n in nodes for t in c.TRACKS if (n, t) not in serving]
        if silent:
            # a frozen exporter or a canary that takes no traffic looks healthy to a ratio: refuse it
            raise UnknownStateError(f"no {self.service} requests in the last {self.window} from {', '.join(silent)}")
        by = (c.TRACK,)
        return {
            "error_ratio": _by_track(
                self.prom.query(q.error_ratio(self.service, window=self.window, by=by, filters=filters)), "error ratio"
            ),
            "inference_error_ratio": _by_track(
                self.prom.query(q.inference_error_ratio(self.service, window=self.window, by=by, filters=filters)),
                "inference error ratio",
            ),
            "p95_seconds": _by_track(
                self.prom.query(q.p95_latency(self.service, window=self.window, by=by, filters=filters)),
                "p95 latency",
            ),
        }

    def judge(self, metrics: dict[str, dict[str, float]]) -> tuple[str, str]:
        """success, failure (the canary is worse), or inconclusive (the KPI is breached on both tracks)."""
        t = self.thresholds
        failures: list[str] = []
        inconclusive: list[str] = []
        limits = {
            "error_ratio": (t.error_ratio, t.errors_vs_stable),
            "inference_error_ratio": (t.inference_error_ratio, t.errors_vs_stable),
            "p95_seconds": (t.p95_seconds, t.latency_vs_stable),
        }
        for name, (kpi, factor) in limits.items():
            canary, stable = metrics[name]["canary"], metrics[name]["stable"]
            text = f"{name} canary {canary:.4g} vs stable {stable:.4g} (KPI {kpi:.4g})"
            worse = canary > stable * factor
            if canary > kpi and (worse or stable <= kpi):
                failures.append(text)
            elif name == "p95_seconds" and worse:
                failures.append(f"{text}: over {factor:g}x stable")
            elif canary > kpi:
                inconclusive.append(f"{text}: stable breaches the KPI too")
        if failures:
            return FAILURE, "; ".join(failures)
        if inconclusive:
            return INCONCLUSIVE, "; ".join(inconclusive)
        p95 = metrics["p95_seconds"]
        return SUCCESS, (
            f"p95 canary {p95['canary'] * 1000:.0f} ms vs stable {p95['stable'] * 1000:.0f} ms, "
            f"errors canary {metrics['error_ratio']['canary']:.3%} vs stable {metrics['error_ratio']['stable']:.3%}"
        )
