"""The analysis check registry: a new check (e.g. word error rate for ASR images) without touching the engine."""

from __future__ import annotations

import math
import re

import pytest

from xzctl.prom import Sample
from xzctl.rollout import analysis
from xzctl.rollout.analysis import CHECKS, Analyzer, Check, describe, turn_kpis
from xzctl.rollout.state import Result, Thresholds
from xzctl.spec import Fleet

WER_QUERY = 'sum by (track) (xiaozhi_asr_word_error_rate{node=~"bj-edge-01"})'


class WerProm:
    """Every node up and serving (100 observations behind each quantile), healthy ratios, and a canary word error
    rate of `canary_wer`."""

    def __init__(self, canary_wer: float) -> None:
        self.canary_wer = canary_wer

    def query(self, promql: str, _at: float | None = None) -> list[Sample]:
        if promql.startswith("max by (node) (up"):
            return [Sample({"node": "bj-edge-01"}, 1.0, 0.0)]
        if promql.startswith("sum by (node, track)"):
            return [Sample({"node": "bj-edge-01", "track": t}, 5.0, 0.0) for t in ("stable", "canary")]
        if promql == WER_QUERY:
            return [Sample({"track": "stable"}, 0.05, 0.0), Sample({"track": "canary"}, self.canary_wer, 0.0)]
        if "(increase(" in promql:
            return [Sample({"track": t}, 100.0, 0.0) for t in ("stable", "canary")]
        value = 0.2 if promql.startswith("histogram_quantile") else 0.0
        return [Sample({"track": t}, value, 0.0) for t in ("stable", "canary")]


@pytest.mark.parametrize(("canary_wer", "result"), [(0.05, Result.SUCCESS), (0.2, Result.FAILURE)])
def test_a_registered_check_is_judged_from_its_threshold(
    monkeypatch: pytest.MonkeyPatch, canary_wer: float, result: Result
) -> None:
    wer = Check("wer", lambda _service, _window, _filters: WER_QUERY, lambda t: t.extra.get("wer"), lambda _: 1.5)
    monkeypatch.setitem(CHECKS, "wer", wer)
    thresholds = Thresholds(error_ratio=0.001, p95_seconds=0.5, inference_error_ratio=0.001, extra={"wer": 0.08})
    m = Analyzer(WerProm(canary_wer), "asr", thresholds).measure(0, ["bj-edge-01"], 10.0)  # type: ignore[arg-type]
    assert m.result == result, m.reason
    assert m.metrics["wer"] == {"stable": 0.05, "canary": canary_wer}
    # without a KPI for it the check does not apply (images whose catalog states no WER)
    plain = Thresholds(error_ratio=0.001, p95_seconds=0.5, inference_error_ratio=0.001)
    assert "wer" not in Analyzer(WerProm(0.9), "asr", plain).measure(0, ["bj-edge-01"], 10.0).metrics  # type: ignore[arg-type]
    assert analysis.CHECKS is CHECKS


@pytest.mark.parametrize(("scrape", "min_window"), [(0.2, 1.0), (0.5, 1.0), (1.0, 2.0), (15.0, 30.0)])
def test_the_shortest_window_holds_two_scrapes(scrape: float, min_window: float) -> None:
    plain = Thresholds(error_ratio=0.001, p95_seconds=0.5, inference_error_ratio=0.001)
    analyzer = Analyzer(WerProm(0.05), "asr", plain, scrape_interval_seconds=scrape)  # type: ignore[arg-type]
    assert analyzer.min_window_seconds == min_window  # and never under the 1s a PromQL window can name


class RealWerProm(WerProm):
    """WerProm answering the registered word-error-rate query (or nothing, as a node without a prober)."""

    def __init__(self, canary_wer: float | None) -> None:
        super().__init__(canary_wer or 0.0)
        self.has_prober = canary_wer is not None

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        if "xiaozhi_asr_word_errors_total" in promql:
            if not self.has_prober:
                return []
            return [Sample({"track": "stable"}, 0.2, 0.0), Sample({"track": "canary"}, self.canary_wer, 0.0)]
        return super().query(promql, at)


@pytest.mark.parametrize(
    ("canary_wer", "result"),
    [(0.2, Result.SUCCESS), (0.5, Result.FAILURE), (None, Result.ERROR)],
    ids=["as-stable", "worse-over-kpi", "no-prober-fails-closed"],
)
def test_word_error_rate_check_asked_for_with_max_wer(canary_wer: float | None, result: Result) -> None:
    thresholds = Thresholds(
        error_ratio=0.001, p95_seconds=0.5, inference_error_ratio=0.001, extra={"word_error_rate": 0.3}
    )
    m = Analyzer(RealWerProm(canary_wer), "asr", thresholds).measure(0, ["bj-edge-01"], 10.0)  # type: ignore[arg-type]
    assert m.result == result, m.reason


class TurnProm(WerProm):
    """WerProm answering the real-turn queries: first-audio p95 and turn failure ratio per track (or nothing)."""

    def __init__(self, canary: tuple[float, float] | None) -> None:
        super().__init__(0.05)
        self.canary = canary

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        turn_metric = {"xiaozhi_turn_first_audio_seconds_bucket": 0, "xiaozhi_turns_total": 1}
        hit = next((i for name, i in turn_metric.items() if name in promql), None)
        if hit is None:
            return super().query(promql, at)
        if self.canary is None:
            return []
        stable = (2.0, 0.01)
        return [Sample({"track": "stable"}, stable[hit], 0.0), Sample({"track": "canary"}, self.canary[hit], 0.0)]


@pytest.mark.parametrize(
    ("canary", "result"),
    [((2.2, 0.01), Result.SUCCESS), ((6.0, 0.01), Result.FAILURE), ((2.0, 0.3), Result.FAILURE), (None, Result.ERROR)],
    ids=["as-stable", "slow-first-audio", "turns-failing", "no-probe-fails-closed"],
)
def test_real_turn_checks(canary: tuple[float, float] | None, result: Result) -> None:
    thresholds = Thresholds(
        error_ratio=0.001,
        p95_seconds=0.5,
        inference_error_ratio=0.001,
        extra={"turn_first_audio_p95_seconds": 3.0, "turn_failure_ratio": 0.05},
    )
    m = Analyzer(TurnProm(canary), "asr", thresholds).measure(0, ["bj-edge-01"], 10.0)  # type: ignore[arg-type]
    assert m.result == result, m.reason
    if canary is not None:
        assert m.metrics["turn_first_audio_p95_seconds"] == {"stable": 2.0, "canary": canary[0]}
    if result == Result.SUCCESS:  # the operator sees what the turn checks read, not only the service's p95
        assert "turn first audio p95 canary 2200 ms vs stable 2000 ms" in m.reason, m.reason
        assert "turn failure ratio canary 1.00% vs stable 1.00%" in m.reason, m.reason


def test_the_turn_kpis_are_the_specs_end_to_end_latency_and_error_rate(example_fleet: Fleet) -> None:
    kpis = turn_kpis(example_fleet)
    assert kpis == {
        "turn_first_audio_p95_seconds": example_fleet.kpis.latency.end_to_end_ms / 1000,
        "turn_failure_ratio": example_fleet.kpis.reliability.error_rate_percent / 100,
    }
    assert [describe(n, v) for n, v in sorted(kpis.items())] == [
        "turn failure ratio 0.10%",
        "turn first audio p95 3000 ms",
    ]


class SlowCanaryProm(WerProm):
    """A canary whose first request finished `finished_ago` seconds ago (None: never): a window shorter than that
    holds no canary sample (rates 0, the p95 NaN), a longer one its slow p95 of 3 s."""

    def __init__(self, finished_ago: float | None) -> None:
        super().__init__(0.05)
        self.finished_ago = finished_ago
        self.windows: list[int] = []

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        found = re.search(r"\[(\d+)s\]", promql)
        if found is None:
            return super().query(promql, at)  # up
        window = int(found.group(1))
        self.windows.append(window)
        seen = self.finished_ago is not None and window >= self.finished_ago
        if promql.startswith("sum by (node, track)"):
            served = {"stable": 5.0, "canary": 1.0 if seen else 0.0}
            return [Sample({"node": "bj-edge-01", "track": t}, served[t], 0.0) for t in served]
        if promql.startswith("histogram_quantile"):
            return [Sample({"track": "stable"}, 0.2, 0.0), Sample({"track": "canary"}, 3.0 if seen else math.nan, 0.0)]
        return super().query(promql, at)


@pytest.mark.parametrize(
    ("finished_ago", "since", "result", "window"),
    [
        (5.0, 60.0, Result.FAILURE, 10.0),  # in the window: judged on it, nothing more read
        (40.0, 60.0, Result.FAILURE, 60.0),  # only since the deploy: judged over all of it (3 s vs 0.2 s)
        (None, 60.0, Result.INCONCLUSIVE, 60.0),  # nothing since the deploy: no samples yet, no abort
        (None, 10.0, Result.PENDING, 10.0),  # the step's samples span no more than the window: wait
        (40.0, None, Result.INCONCLUSIVE, 10.0),  # no span given: the window is all there is
    ],
    ids=["in-window", "since-deploy", "none-yet", "window-not-full", "window-only"],
)
def test_a_track_with_no_samples_is_read_over_the_whole_step(
    finished_ago: float | None, since: float | None, result: Result, window: float
) -> None:
    thresholds = Thresholds(error_ratio=0.001, p95_seconds=0.5, inference_error_ratio=0.001, latency_vs_stable=2.0)
    prom = SlowCanaryProm(finished_ago)
    m = Analyzer(prom, "asr", thresholds).measure(0, ["bj-edge-01"], 10.0, since)  # type: ignore[arg-type]
    assert (m.result, m.window_seconds) == (result, window), m.reason
    assert max(prom.windows) == window  # never a sample from before the step's deploy
    if result in (Result.INCONCLUSIVE, Result.PENDING):
        assert m.reason.startswith("no samples yet: no asr request finished on bj-edge-01/canary"), m.reason


class RecordingProm(WerProm):
    """WerProm that remembers every PromQL it was asked."""

    def __init__(self) -> None:
        super().__init__(0.05)
        self.asked: list[str] = []

    def query(self, promql: str, _at: float | None = None) -> list[Sample]:
        self.asked.append(promql)
        return super().query(promql.replace(',region=~"beijing"', ""), _at)


@pytest.mark.parametrize(
    ("node_regions", "matcher"),
    [
        ({"bj-edge-01": "beijing", "sh-edge-01": "shanghai"}, ',region=~"beijing"'),  # only the canary's region
        (None, None),  # no fleet given: node matchers alone
    ],
)
def test_the_analysis_names_the_canary_regions_so_thanos_asks_only_them(
    node_regions: dict[str, str] | None, matcher: str | None
) -> None:
    prom = RecordingProm()
    thresholds = Thresholds(error_ratio=0.001, p95_seconds=0.5, inference_error_ratio=0.001)
    analyzer = Analyzer(prom, "asr", thresholds, node_regions=node_regions)  # type: ignore[arg-type]
    m = analyzer.measure(0, ["bj-edge-01"], 10.0)
    assert m.result is Result.SUCCESS, m.reason
    assert prom.asked
    for promql in prom.asked:
        assert ("region=" in promql) == (matcher is not None), promql
        assert matcher is None or matcher in promql, promql


class SparseProm(WerProm):
    """A lightly used node: each track finishes `per_minute` requests a minute, with p95s `canary` and `stable`."""

    def __init__(self, per_minute: float, canary: float, stable: float) -> None:
        super().__init__(0.05)
        self.per_minute, self.p95 = per_minute, {"canary": canary, "stable": stable}

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        found = re.search(r"\[(\d+)s\]", promql)
        if found and "(increase(" in promql:
            n = self.per_minute * int(found.group(1)) / 60
            return [Sample({"track": t}, n, 0.0) for t in ("stable", "canary")]
        if promql.startswith("histogram_quantile"):
            return [Sample({"track": t}, v, 0.0) for t, v in self.p95.items()]
        return super().query(promql, at)


@pytest.mark.parametrize(
    ("per_minute", "canary", "since", "result", "window"),
    [
        (600, 0.21, 60.0, Result.SUCCESS, 10.0),  # 100 requests a track: compared
        (600, 0.4, 60.0, Result.FAILURE, 10.0),  # 2x stable within the KPI: worse
        (6, 0.4, 10.0, Result.PENDING, 10.0),  # 1 request a track: its p95 is that one; wait for the window
        (6, 0.4, 60.0, Result.INCONCLUSIVE, 60.0),  # 6 over the whole step: too few to call it worse
        (6, 0.21, 10.0, Result.SUCCESS, 10.0),  # not worse on any count
        (6, 0.4, 300.0, Result.FAILURE, 300.0),  # 30 over the whole step: compared, worse
        (6, 0.21, 300.0, Result.SUCCESS, 10.0),  # judged on the window: nothing more read
        (6, 0.9, 10.0, Result.FAILURE, 10.0),  # over the KPI where stable is within it: fails at any count
    ],
)
def test_a_p95_is_called_worse_than_stable_only_over_enough_requests(
    per_minute: float, canary: float, since: float, result: Result, window: float
) -> None:
    thresholds = Thresholds(error_ratio=0.001, p95_seconds=0.5, inference_error_ratio=0.001)
    prom = SparseProm(per_minute, canary, 0.2)
    m = Analyzer(prom, "asr", thresholds).measure(0, ["bj-edge-01"], 10.0, since)  # type: ignore[arg-type]
    assert (m.result, m.window_seconds) == (result, window), m.reason
    if result in (Result.PENDING, Result.INCONCLUSIVE):
        n = per_minute * window / 60
        assert m.reason.startswith(f"too few samples yet to compare with stable: p95 from {n:.0f} canary"), m.reason
        assert m.reason.endswith("a p95 needs 20 per track"), m.reason
