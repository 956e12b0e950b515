"""A load test's figures as one plain snapshot of Locust's stats: the CLI's table and JSON, the progress line and the
/metrics exposition all read it, so they never disagree (Locust's CSV files are written from the same stats).

Percentiles are Locust's: response times kept to 2 significant digits (0.1 s above 1 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xzctl.metrics import contract as c

# The stats entries a device's turn writes (Locust's request names), and the contract metric of each.
STT, FIRST_AUDIO, TURN, FAILED = "stt", "first_audio", "turn", "failed"
TIMED = {STT: c.TURN_STT_SECONDS, FIRST_AUDIO: c.TURN_FIRST_AUDIO_SECONDS, TURN: c.TURN_SECONDS}


def failure_kind(raw: object) -> str:
    """The contract's kind of a failed turn; anything else a device reports is `error` (label values are data)."""
    return raw if isinstance(raw, str) and raw in c.TURN_FAILURE_KINDS else "error"


@dataclass(frozen=True)
class Timing:
    count: int = 0
    p50: float | None = None
    p95: float | None = None
    max: float | None = None
    sum_seconds: float = 0.0
    buckets: tuple[int, ...] = ()  # cumulative counts at each of contract.TURN_BUCKETS

    def to_json(self) -> dict[str, float | None]:
        return {"p50": self.p50, "p95": self.p95, "max": self.max}


@dataclass(frozen=True)
class Snapshot:
    devices: int  # devices running now (the run's target once ramped)
    turns: int
    failed: int
    timings: dict[str, Timing]
    failures: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    interrupted: bool = False

    @property
    def failed_ratio(self) -> float:
        return self.failed / self.turns if self.turns else 0.0

    def timing(self, name: str) -> Timing:
        return self.timings.get(name, Timing())

    def to_json(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "turns": self.turns,
            "failed": self.failed,
            "failed_ratio": round(self.failed_ratio, 6),
            **{f"{name}_seconds": self.timing(name).to_json() for name in TIMED},
            "failures": dict(sorted(self.failures.items())),
            "elapsed_seconds": round(self.elapsed, 1),
            "interrupted": self.interrupted,
        }

    def progress_line(self) -> str:
        fa = self.timing(FIRST_AUDIO)
        return (
            f"{self.elapsed:5.0f}s  devices {self.devices}  turns {self.turns}  failed {self.failed}  "
            f"first audio p50 {_s(fa.p50)} p95 {_s(fa.p95)}"
        )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def cumulative(response_times_ms: dict[int, int]) -> tuple[int, ...]:
    """Counts at or under each contract bucket, from Locust's {rounded ms: count}."""
    return tuple(sum(n for ms, n in response_times_ms.items() if ms <= bound * 1000) for bound in c.TURN_BUCKETS)


def exposition(snapshot: Snapshot, track: str) -> str:
    """Prometheus text of the contract's turn metrics. `region` and `node` are the scrape target's labels (as for
    every exporter of the contract), so they are not written here."""
    lines: list[str] = []
    for name, metric in TIMED.items():
        t = snapshot.timing(name)
        lines += _header(metric)
        counts = t.buckets or (0,) * len(c.TURN_BUCKETS)
        for bound, n in zip(c.TURN_BUCKETS, counts, strict=True):
            lines.append(f'{metric.name}_bucket{{track="{track}",le="{bound:g}"}} {n}')
        lines.append(f'{metric.name}_bucket{{track="{track}",le="+Inf"}} {t.count}')
        lines.append(f'{metric.name}_sum{{track="{track}"}} {t.sum_seconds:.3f}')
        lines.append(f'{metric.name}_count{{track="{track}"}} {t.count}')
    lines += _header(c.TURNS)
    lines.append(f'{c.TURNS.name}{{track="{track}",result="ok"}} {snapshot.turns - snapshot.failed}')
    lines.append(f'{c.TURNS.name}{{track="{track}",result="failed"}} {snapshot.failed}')
    lines += _header(c.TURN_FAILURES)
    for kind in sorted({*c.TURN_FAILURE_KINDS, *snapshot.failures}):
        lines.append(f'{c.TURN_FAILURES.name}{{track="{track}",kind="{kind}"}} {snapshot.failures.get(kind, 0)}')
    return "\n".join(lines) + "\n"


def _header(metric: c.Metric) -> list[str]:
    return [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} {metric.type.value}"]
