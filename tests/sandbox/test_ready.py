"""A fresh sandbox's first verdicts: trustworthy once every node was scraped 3 times, with or without history."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from xzctl.checks.window import MIN_SCRAPES
from xzctl.cli import run
from xzctl.sandbox import SandboxInfo
from xzctl.sandbox.ready import scraped_at, wait_scraped

pytestmark = pytest.mark.live


def report(capsys: pytest.CaptureFixture[str], box: SandboxInfo) -> dict[str, Any]:
    code, (out, err) = run(["capacity", "report", "--state-dir", str(box.state_dir), "-o", "json"]), capsys.readouterr()
    assert code in (0, 1), err
    document: dict[str, Any] = json.loads(out)
    return document


def mean_cpu(document: dict[str, Any]) -> float:
    return statistics.fmean(n["cpu"] for n in document["nodes"])


def test_first_report_after_a_backfill_reads_like_one_without(
    sandbox_factory: Callable[..., SandboxInfo], capsys: pytest.CaptureFixture[str]
) -> None:
    # The backfill ends where the live simulator starts with fresh counters: a rate across that seam read CPU 95 %.
    # Both sandboxes fresh, each judged as soon as `sandbox up` would return: the first report of each.
    fresh = sandbox_factory(history=timedelta(hours=2))
    plain = sandbox_factory()
    assert wait_scraped(fresh, MIN_SCRAPES, timeout=60) and wait_scraped(plain, MIN_SCRAPES, timeout=60)
    first = report(capsys, fresh)
    reasons = [r for n in first["nodes"] for r in n["reasons"]]
    assert not [r for r in reasons if "frozen" in r or "stale" in r], reasons
    assert all(n["status"] != "unknown" for n in first["nodes"]), reasons
    without = mean_cpu(report(capsys, plain))
    assert abs(mean_cpu(first) - without) < 0.10, (mean_cpu(first), without)


def test_waiting_gives_up_at_its_timeout_and_says_from_when(sandbox: SandboxInfo) -> None:
    assert wait_scraped(sandbox, MIN_SCRAPES, timeout=30)
    assert not wait_scraped(sandbox, 10**6, timeout=0.5)  # a million scrapes never come in half a second
    assert scraped_at(sandbox, MIN_SCRAPES) == sandbox.started_at + MIN_SCRAPES * sandbox.scrape_interval_seconds
