"""PromQL builders: aggregated by labels, filters quoted, and every expression valid for Prometheus."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from xzctl.errors import BadInputError
from xzctl.metrics import queries as q
from xzctl.metrics import recorded


def test_filters_become_exact_or_alternation_matchers_with_escaping() -> None:
    sel = q.selector({"node": ["bj-edge-01", "a.b"], "region": 'say "hi"', "image": q.Regex("$image")})
    assert sel == '{job="xiaozhi-edge",image=~"$image",node=~"bj-edge-01|a\\\\.b",region="say \\"hi\\""}'


def test_queries_aggregate_by_labels_not_per_node() -> None:
    expr = q.p95_latency("asr", by=("region",))
    assert expr.startswith("histogram_quantile(0.95, sum by (region, le) (rate(xiaozhi_request_duration_seconds_bucket")
    assert 'service="asr"' in expr
    assert "sum by (region, node) (xiaozhi_active_devices" in q.active_devices()


def test_whole_cache_hit_ratio_divides_by_l1_lookups() -> None:
    expr = q.cache_hit_ratio()
    assert 'result="hit"' in expr and 'tier="l1"' in expr
    assert 'tier="l2"' in q.cache_hit_ratio("l2")


def test_slow_request_ratio_needs_a_bucket_bound() -> None:
    assert 'le="3"' in q.slow_request_ratio("end_to_end", 3.0)
    with pytest.raises(BadInputError, match="bucket bound"):
        q.slow_request_ratio("end_to_end", 2.7)


@pytest.mark.live
def test_every_builder_parses_in_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    exprs = [
        q.p95_latency(),
        q.request_rate(),
        q.error_ratio(),
        q.inference_error_ratio(),
        q.cache_hit_ratio(),
        q.cpu_utilization(),
        q.memory_utilization(),
        q.gpu_utilization(),
        q.gpu_memory_utilization(),
        q.active_devices(),
        q.queue_size(),
        q.node_up(),
        q.scrape_age_seconds(),
        q.running_images(),
        q.slow_request_ratio("end_to_end", 3.0),
    ]
    rules = {
        "groups": [{"name": "parse", "rules": [{"record": f"test:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]
    }
    (tmp_path / "r.yml").write_text(yaml.safe_dump(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "r.yml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


@pytest.mark.parametrize(
    ("window", "precomputed"),
    [(recorded.RECORDED_WINDOW, True), ("90s", False), ("10m", False)],
)
def test_a_snapshot_reads_the_recorded_series_only_at_the_recorded_window(window: str, precomputed: bool) -> None:
    reads = q.node_figure_reads(window)
    assert reads.keys() == q.node_figures(window).keys()
    if precomputed:
        assert sorted(reads.values()) == sorted(recorded.NODE_SERIES)
    else:
        assert reads == q.node_figures(window)
        assert all(f"[{window}]" in query for query in reads.values())


def test_the_recording_rules_record_the_raw_figures_at_the_recorded_window() -> None:
    rules = q.node_recording_rules()
    raw = q.node_figures(recorded.RECORDED_WINDOW)
    reads = q.node_figure_reads(recorded.RECORDED_WINDOW)
    # each recorded series is the rule of the same figure's raw expression: one figure, two ways to read it
    assert {r["record"]: r["expr"] for r in rules} == {reads[f]: raw[f] for f in raw}
    assert all(f"[{recorded.RECORDED_WINDOW}]" in r["expr"] for r in rules)
