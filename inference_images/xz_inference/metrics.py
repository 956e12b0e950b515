"""Prometheus text exposition for the contract's metrics, without a client library.

The names and labels come from `xzctl.metrics.contract` itself: in the repository it is imported as is; the image
carries a byte-identical copy of that one file under an otherwise empty `xzctl` package (the contract imports only
the standard library, and the image must not carry xzctl's dependencies).
"""

from __future__ import annotations

import threading
from bisect import bisect_left

from xzctl.metrics import contract as c

Labels = tuple[tuple[str, str], ...]
TARGET_LABELS = (c.REGION, c.NODE)


def _fmt_labels(labels: Labels) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels)
    return "{" + body + "}"


class Registry:
    """Counters, gauges and histograms keyed by (metric, labels); thread-safe, rendered on /metrics."""

    def __init__(self, base: dict[str, str]) -> None:
        self.base = base
        self._lock = threading.Lock()
        self._values: dict[tuple[str, Labels], float] = {}
        self._hist: dict[tuple[str, Labels], list[float]] = {}  # bucket counts..., sum, count
        self._metrics: dict[str, c.Metric] = {}

    def _key(self, metric: c.Metric, extra: dict[str, str]) -> Labels:
        merged = {**self.base, **extra}
        # region and node are target labels: Prometheus adds them from the scrape config unless the service has them
        names = [name for name in metric.labels if name in merged or name not in TARGET_LABELS]
        missing = [name for name in names if name not in merged]
        if missing:
            raise KeyError(f"{metric.name} needs labels {missing}")
        self._metrics[metric.name] = metric
        return tuple((name, merged[name]) for name in names)

    def inc(self, metric: c.Metric, amount: float = 1.0, **labels: str) -> None:
        key = (metric.name, self._key(metric, labels))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, metric: c.Metric, value: float, **labels: str) -> None:
        key = (metric.name, self._key(metric, labels))
        with self._lock:
            self._values[key] = value

    def observe(self, metric: c.Metric, seconds: float, **labels: str) -> None:
        key = (metric.name, self._key(metric, labels))
        n = len(c.LATENCY_BUCKETS)
        with self._lock:
            row = self._hist.setdefault(key, [0.0] * (n + 2))
            index = bisect_left(c.LATENCY_BUCKETS, seconds)
            if index < n:
                row[index] += 1
            row[n] += seconds
            row[n + 1] += 1

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            values = dict(self._values)
            hist = {k: list(v) for k, v in self._hist.items()}
        for name in sorted(self._metrics):
            metric = self._metrics[name]
            lines.append(f"# HELP {name} {metric.help}")
            lines.append(f"# TYPE {name} {metric.type.value}")
            for (mname, labels), value in sorted(values.items()):
                if mname == name:
                    lines.append(f"{name}{_fmt_labels(labels)} {value:g}")
            for (mname, labels), row in sorted(hist.items()):
                if mname != name:
                    continue
                cumulative = 0.0
                for bound, count in zip(c.LATENCY_BUCKETS, row, strict=False):
                    cumulative += count
                    lines.append(f"{name}_bucket{_fmt_labels((*labels, ('le', f'{bound:g}')))} {cumulative:g}")
                n = len(c.LATENCY_BUCKETS)
                lines.append(f"{name}_bucket{_fmt_labels((*labels, ('le', '+Inf')))} {row[n + 1]:g}")
                lines.append(f"{name}_sum{_fmt_labels(labels)} {row[n]:g}")
                lines.append(f"{name}_count{_fmt_labels(labels)} {row[n + 1]:g}")
        return "\n".join(lines) + "\n"
