"""`promtool test rules` for every alert: it fires when it should, not before its `for`, not on healthy data.

Input series are written the way promtool reads them ('0+60x30': start at 0, add 60 every minute).
Annotations are left out of the tested copy of the rules (they template $value); their content is
checked in test_rules.py, their template syntax by `promtool check rules`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from xzctl.alerts import ALERT_NAMES, rules_file
from xzctl.metrics import recorded
from xzctl.spec.models import Fleet

pytestmark = pytest.mark.live
NODE = {"job": "xiaozhi-edge", "instance": "bj-edge-01", "region": "beijing", "node": "bj-edge-01"}
WHERE = {"region": "beijing", "node": "bj-edge-01"}
POINTS = 240  # four hours of one-minute samples: long enough for the slowest `for` (3h)


def _labels(**extra: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in {**NODE, **extra}.items()) + "}"


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    return {"series": f"{name}{_labels(**labels)}", "values": values}


def _counter(per_minute: float) -> str:
    return f"0+{per_minute:g}x{POINTS}"


def requests(service: str, per_minute: float, error_share: float, track: str = "stable") -> list[dict[str, str]]:
    keys = {"service": service, "track": track, "image": f"registry.example/{service}:{track}"}
    return [
        _series("xiaozhi_requests_total", _counter(per_minute * (1 - error_share)), **keys, result="ok"),
        _series("xiaozhi_requests_total", _counter(per_minute * error_share), **keys, result="error"),
    ]


def histogram(service: str, per_minute: float, below: dict[str, float], track: str = "stable") -> list[dict[str, str]]:
    """Cumulative buckets: `below[le]` is the share of requests at or under `le` seconds."""
    keys = {"service": service, "track": track, "image": f"registry.example/{service}:{track}"}
    out = [
        _series("xiaozhi_request_duration_seconds_bucket", _counter(per_minute * share), **keys, le=le)
        for le, share in {**below, "+Inf": 1.0}.items()
    ]
    out.append(_series("xiaozhi_request_duration_seconds_count", _counter(per_minute), **keys))
    return out


def inference_errors(service: str, per_minute: float) -> list[dict[str, str]]:
    image = f"registry.example/{service}:stable"
    return [
        _series("xiaozhi_inference_errors_total", _counter(per_minute), service=service, track="stable", image=image)
    ]


def word_errors(words_per_minute: float, errors_per_minute: float, track: str = "stable") -> list[dict[str, str]]:
    keys = {"track": track, "image": f"registry.example/asr:{track}"}
    return [
        _series("xiaozhi_asr_reference_words_total", _counter(words_per_minute), **keys),
        _series("xiaozhi_asr_word_errors_total", _counter(errors_per_minute), **keys),
    ]


def turns(per_minute: float, failed_share: float, first_audio_below: dict[str, float]) -> list[dict[str, str]]:
    """Devices' turns: `first_audio_below[le]` is the share of answered turns with first audio within `le` s."""
    out = [
        _series("xiaozhi_turns_total", _counter(per_minute * (1 - failed_share)), track="stable", result="ok"),
        _series("xiaozhi_turns_total", _counter(per_minute * failed_share), track="stable", result="failed"),
    ]
    return out + [
        _series("xiaozhi_turn_first_audio_seconds_bucket", _counter(per_minute * share), track="stable", le=le)
        for le, share in {**first_audio_below, "+Inf": 1.0}.items()
    ]


def gauge(name: str, value: float, **labels: str) -> list[dict[str, str]]:
    return [_series(name, f"{value:g}x{POINTS}", **labels)]


@dataclass
class Case:
    alert: str
    firing: list[dict[str, Any]]  # input series of the bad situation
    healthy: list[dict[str, Any]]
    pending_at: str  # condition true, `for` not yet over: no alert
    firing_at: str
    labels: list[dict[str, str]]  # every alert expected at firing_at
    also_at: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)


def _burn(slo: str, severity: str, window: str) -> dict[str, str]:
    return {"severity": severity, "region": "beijing", "slo": slo, "window": window}


CASES = [
    Case(
        "HighLatency",
        histogram("end_to_end", 60, {"1": 0, "3": 0, "5": 1.0}),
        histogram("end_to_end", 60, {"1": 0.97, "3": 1.0, "5": 1.0}),
        "2m",
        "6m",
        [{"severity": "warning", **WHERE}],
    ),
    Case(
        "DeviceOverload",
        gauge("xiaozhi_active_devices", 160),
        gauge("xiaozhi_active_devices", 140),
        "4m",
        "10m",
        [{"severity": "warning", **WHERE}],
    ),
    Case(
        "ModelInferenceFailure",
        [*requests("asr", 100, 0.05), *inference_errors("asr", 5)],
        [*requests("asr", 100, 0.0005), *inference_errors("asr", 0.05)],
        "1m",
        "3m",
        [{"severity": "critical", **WHERE, "service": "asr"}],
    ),
    Case(
        "CacheHitRateLow",
        [
            _series("xiaozhi_cache_requests_total", _counter(50), tier="l1", result="hit"),
            _series("xiaozhi_cache_requests_total", _counter(50), tier="l1", result="miss"),
        ],
        [
            _series("xiaozhi_cache_requests_total", _counter(80), tier="l1", result="hit"),
            _series("xiaozhi_cache_requests_total", _counter(20), tier="l1", result="miss"),
            _series("xiaozhi_cache_requests_total", _counter(12), tier="l2", result="hit"),
            _series("xiaozhi_cache_requests_total", _counter(8), tier="l2", result="miss"),
        ],
        "8m",
        "15m",
        [{"severity": "warning", **WHERE}],
    ),
    Case(
        "QueueBacklog",
        gauge("xiaozhi_processing_queue_size", 150, service="llm"),
        gauge("xiaozhi_processing_queue_size", 10, service="llm"),
        "4m",
        "10m",
        [{"severity": "warning", **WHERE, "service": "llm"}],
    ),
    Case(
        "EdgeNodeDown",
        [{"series": f"up{_labels()}", "values": f"0x{POINTS}"}],
        [{"series": f"up{_labels()}", "values": f"1x{POINTS}"}],
        "0m",
        "2m",
        [{"severity": "critical", **WHERE}],
    ),
    Case(
        "CanaryDegraded",
        histogram("asr", 90, {"0.5": 0.99, "1": 1.0})
        + histogram("asr", 10, {"0.5": 0.0, "1": 1.0}, "canary")
        + requests("asr", 90, 0.0)
        + requests("asr", 10, 0.0, "canary"),
        histogram("asr", 90, {"0.5": 0.99, "1": 1.0})
        + histogram("asr", 10, {"0.5": 0.99, "1": 1.0}, "canary")
        + requests("asr", 90, 0.001)
        + requests("asr", 10, 0.002, "canary"),
        "4m",
        "8m",
        [{"severity": "warning", **WHERE, "service": "asr"}],
    ),
    Case(
        # the canary's transcripts lose 45 words in 100; stable's 10 in 100 stays quiet
        "AsrAccuracyLow",
        word_errors(100, 10) + word_errors(100, 45, "canary"),
        word_errors(100, 10) + word_errors(100, 12, "canary"),
        "8m",
        "22m",
        [{"severity": "warning", **WHERE, "track": "canary"}],
    ),
    Case(
        # devices hear the first audio after 4-5 s (the seed's KPI is 3 s); healthy: 97% within 2.5 s
        "TurnLatencyHigh",
        turns(12, 0.0, {"2.5": 0.0, "3": 0.0, "4": 0.5, "5": 1.0}),
        turns(12, 0.0, {"2.5": 0.97, "3": 1.0, "4": 1.0, "5": 1.0}),
        "4m",
        "8m",
        [{"severity": "warning", **WHERE}],
    ),
    Case(
        # 1 turn in 100 fails (10x the 0.1% KPI); healthy: 1 in 2000
        "TurnFailures",
        turns(100, 0.01, {"3": 1.0}),
        turns(100, 0.0005, {"3": 1.0}),
        "4m",
        "8m",
        [{"severity": "warning", **WHERE}],
    ),
    Case(
        "AvailabilityBudgetBurn",
        requests("end_to_end", 1000, 0.05),  # 50x the 0.1% budget
        requests("end_to_end", 1000, 0.0005),  # 0.5x
        "2m",
        "5m",
        [_burn("availability", "critical", "1h/5m")],
        also_at=[("20m", [_burn("availability", "critical", "1h/5m"), _burn("availability", "critical", "6h/30m")])],
    ),
    Case(
        # a slow 2x burn: only the 3d/6h ticket, and only after its 3h `for`
        "AvailabilityBudgetBurn",
        requests("end_to_end", 1000, 0.002),
        requests("end_to_end", 1000, 0.0005),
        "2h",
        "3h10m",
        [_burn("availability", "warning", "3d/6h")],
    ),
    Case(
        "LatencyBudgetBurn",
        histogram("end_to_end", 100, {"1": 0.0, "3": 0.0}),  # every request slower than the 3 s SLO
        histogram("end_to_end", 100, {"1": 0.5, "3": 0.99}),
        "1m",
        "5m",
        [_burn("latency", "critical", "1h/5m")],
    ),
    Case(
        "LatencyBudgetBurn",
        histogram("end_to_end", 100, {"1": 0.5, "3": 0.93}),  # 7% slow: 1.4x the 5% budget
        histogram("end_to_end", 100, {"1": 0.5, "3": 0.99}),
        "2h",
        "3h10m",
        [_burn("latency", "warning", "3d/6h")],
    ),
]


def _without_annotations(fleet: Fleet) -> dict[str, Any]:
    doc = rules_file(fleet)
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return doc


def _promtool_test(tmp_path: Path, fleet: Fleet, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(_without_annotations(fleet), sort_keys=False))
    suite = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return subprocess.run(
        [promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )


def _unit(case: Case, series: list[dict[str, Any]], checks: list[tuple[str, list[dict[str, str]]]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": at, "alertname": case.alert, "exp_alerts": [{"exp_labels": lab} for lab in labels]}
            for at, labels in checks
        ],
    }


def test_every_alert_has_a_case() -> None:
    assert {c.alert for c in CASES} == set(ALERT_NAMES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.alert}-{c.firing_at}" for c in CASES])
def test_alert_fires_after_its_for_and_never_on_healthy_data(case: Case, example_fleet: Fleet, tmp_path: Path) -> None:
    checks = [(case.pending_at, []), (case.firing_at, case.labels), *case.also_at]
    healthy: list[tuple[str, list[dict[str, str]]]] = [(at, []) for at, _ in checks]
    result = _promtool_test(
        tmp_path, example_fleet, [_unit(case, case.firing, checks), _unit(case, case.healthy, healthy)]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_catches_a_wrong_expectation(example_fleet: Fleet, tmp_path: Path) -> None:
    """The harness itself can fail: expecting DeviceOverload on 140 devices is reported as a failure."""
    case = CASES[1]
    result = _promtool_test(tmp_path, example_fleet, [_unit(case, case.healthy, [(case.firing_at, case.labels)])])
    assert result.returncode != 0
    assert "DeviceOverload" in result.stdout + result.stderr


def test_the_node_recordings_hold_the_figures_the_checks_read(example_fleet: Fleet, tmp_path: Path) -> None:
    """What `capacity report` and `check failover` read at the 5m window, recorded: a quarter of the requests fail,
    half the cache lookups hit at L1, the CPU is idle half the time, p95 lies between the 1 s and 2 s bounds."""
    cache = {"tier": "l1"}
    series = [
        *requests("end_to_end", 60, 0.25),
        *histogram("end_to_end", 60, {"1": 0.5, "2": 1.0}),
        _series("xiaozhi_cache_requests_total", _counter(30), **cache, result="hit"),
        _series("xiaozhi_cache_requests_total", _counter(30), **cache, result="miss"),
        _series("node_cpu_seconds_total", _counter(30), cpu="0", mode="idle"),  # 0.5 s idle a second
        _series("node_cpu_seconds_total", _counter(30), cpu="0", mode="user"),
    ]
    expected = {
        recorded.NODE_ERROR_RATIO: 0.25,
        recorded.NODE_CACHE_HIT: 0.5,
        recorded.NODE_CPU: 0.5,
        recorded.NODE_P95: 1.9,  # 1 + (0.95 - 0.5) / 0.5 x (2 - 1)
    }
    by = {recorded.NODE_P95: {**WHERE, "service": "end_to_end"}}
    unit = {
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            {
                "expr": record,
                "eval_time": "30m",
                "exp_samples": [{"labels": _plain(record, by.get(record, WHERE)), "value": v}],
            }
            for record, v in expected.items()
        ],
    }
    result = _promtool_test(tmp_path, example_fleet, [unit])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _plain(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
