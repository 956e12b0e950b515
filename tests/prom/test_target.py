"""`--show-queries`: the PromQL a command sends, one line each on stderr, before Prometheus answers (or not)."""

from __future__ import annotations

import pytest

from tests.fixtures.prometheus import refused_url
from xzctl.cli import run
from xzctl.errors import UnknownStateError
from xzctl.metrics import queries as q
from xzctl.prom.target import PrometheusTarget


def test_the_client_tells_each_query_before_it_is_sent() -> None:
    seen: list[str] = []
    with (
        refused_url() as url,
        PrometheusTarget(url, retries=0, on_query=seen.append).client() as client,
        pytest.raises(UnknownStateError, match="cannot reach Prometheus"),
    ):
        client.query(q.nodes_up_count())
    assert seen == [q.nodes_up_count()]


def test_show_queries_prints_the_checks_promql(capsys: pytest.CaptureFixture[str]) -> None:
    with refused_url() as url:
        code = run(["check", "cost", "--example", "--prometheus", url, "--retries", "0", "--show-queries"])
    err = capsys.readouterr().err
    assert code == 3
    shown = [line.removeprefix("promql: ") for line in err.splitlines() if line.startswith("promql: ")]
    # Each region's round stops at its first refusal: the queries that were sent, each once, whole.
    for region in ("beijing", "shanghai", "guangzhou"):
        assert q.node_up(by=q.NODE_BY, filters={"region": region}) in shown
    assert len(shown) == len(set(shown))
