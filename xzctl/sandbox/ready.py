"""When a fresh sandbox's verdicts can be trusted: every edge node scraped a few times since it started.

Before that a rate has too few samples (and, with `--history`, would reach into the backfill), so a live check
would say unknown or, worse, read false numbers. `sandbox up` waits for this, or says until when; how many
scrapes a verdict needs is the checks' rule (xzctl.checks.window.MIN_SCRAPES), passed in.
"""

from __future__ import annotations

import math
import time

from xzctl.errors import UnknownStateError
from xzctl.metrics import queries as q
from xzctl.prom import PrometheusClient
from xzctl.sandbox.run import SandboxInfo

POLLS_PER_INTERVAL = 4

MAX_POLLS = 4000  # besides the timeout: no wait loops forever


def _since_start(info: SandboxInfo) -> str:
    # Only samples since the start count: the window never reaches back into a backfill.
    return f"{max(1, math.ceil(time.time() - info.started_at))}s"


def live_span(client: PrometheusClient, info: SandboxInfo) -> float:
    """Seconds the live scrapes of every edge node span (0 before two scrapes): how long a rate window may be.

    Measured, not taken from the clock: Prometheus' first scrape comes seconds after the start, and a window
    longer than its samples divides their increase by the whole window (CPU read 69 % instead of 24 %)."""
    answer = client.query(q.scrapes(window=_since_start(info), by=()))
    count = answer[0].value if answer and math.isfinite(answer[0].value) else 0.0
    return max(0.0, count - 1) * info.scrape_interval_seconds


def scraped_at(info: SandboxInfo, times: int) -> float:
    """The earliest wall time every edge node can have been scraped `times` times since the start."""
    return info.started_at + times * info.scrape_interval_seconds


def wait_scraped(info: SandboxInfo, times: int, timeout: float) -> bool:
    """Wait (at most `timeout` s) until every edge node has been scraped `times` times since the start and is up.

    True when it is; False at the timeout (a node down or scrapes slower than said), which is not an error."""
    deadline = time.monotonic() + timeout
    poll = max(0.1, info.scrape_interval_seconds / POLLS_PER_INTERVAL)
    with PrometheusClient(info.prometheus_url, timeout=min(5.0, max(timeout, 0.5)), retries=0) as client:
        for _ in range(MAX_POLLS):
            try:
                answer = client.query(q.nodes_scraped(times, window=_since_start(info)))
            except UnknownStateError:
                answer = []  # Prometheus still starting: keep polling until the deadline
            if answer and answer[0].value >= info.nodes:
                return True
            if time.monotonic() + poll > deadline:
                return False
            time.sleep(poll)
    return False
