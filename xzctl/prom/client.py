"""A small client of the Prometheus HTTP API (instant and range queries) that fails closed.

Every answer that does not let the caller trust the data (unreachable, timeout, 5xx, a body that is
not the API's JSON) raises UnknownStateError, so a check built on it can only say "unknown", never
"ok". A query Prometheus rejects as malformed (400) is the caller's mistake: BadInputError.
Only transient failures are retried (connection errors, 502/503/504), a bounded number of times.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from xzctl.errors import BadInputError, UnknownStateError

_TRANSIENT_STATUS = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector (or the single value of a scalar answer, with no labels)."""

    labels: dict[str, str]
    value: float
    timestamp: float

    @property
    def is_nan(self) -> bool:
        return math.isnan(self.value)


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and (timestamp, value) points in time order."""

    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)


class PrometheusClient:
    """Prometheus HTTP API client: `query`, `query_range`, with a count of the queries sent.

    `timeout` bounds each HTTP request and is passed to Prometheus as the evaluation timeout;
    `retries` is how many times a transient failure is retried (so at most retries+1 requests).
    """

    def __init__(
        self,
        url: str,
        *,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        backoff_seconds: float = 0.2,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise BadInputError(f"Prometheus URL {url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:9090")
        if bearer_token and basic_auth:
            raise BadInputError("give a bearer token or basic auth for Prometheus, not both")
        if timeout <= 0 or retries < 0:
            raise BadInputError("Prometheus timeout must be > 0 and retries >= 0")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.query_count = 0  # logical queries (query + query_range), not counting retries
        self.request_count = 0  # HTTP requests, retries included
        self._count_lock = threading.Lock()
        self._session = requests.Session()
        self._session.headers.update(headers or {})
        if bearer_token:
            self._session.headers["Authorization"] = f"Bearer {bearer_token}"
        if basic_auth:
            self._session.auth = basic_auth

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """Evaluate `promql` at `at` (unix seconds; default now) and return its instant vector."""
        params: dict[str, str] = {"query": promql}
        if at is not None:
            params["time"] = _fmt(at)
        data = self._call("query", params)
        kind, result = data.get("resultType"), data.get("result", [])
        try:
            if kind == "vector":
                return [Sample(dict(r["metric"]), float(r["value"][1]), float(r["value"][0])) for r in result]
            if kind == "scalar":
                return [Sample({}, float(result[1]), float(result[0]))]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UnknownStateError(f"Prometheus {self.url} sent a malformed vector for {promql!r}: {exc}") from exc
        raise UnknownStateError(f"Prometheus {self.url} answered {promql!r} with a {kind}, not an instant vector")

    def query_many(self, promqls: Sequence[str], at: float | None = None, *, parallel: int = 4) -> list[list[Sample]]:
        """Evaluate several instant queries at one instant, `parallel` at a time (Prometheus runs them concurrently).

        Answers come back in the order of `promqls`; the first failure is raised.
        """
        if not promqls:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(promqls)))) as pool:
            return list(pool.map(lambda promql: self.query(promql, at), promqls))

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """Evaluate `promql` over [start, end] every `step` seconds (a matrix)."""
        if step <= 0 or end < start:
            raise BadInputError(f"bad range for {promql!r}: start {start}, end {end}, step {step}")
        params = {"query": promql, "start": _fmt(start), "end": _fmt(end), "step": _fmt(step)}
        data = self._call("query_range", params)
        if data.get("resultType") != "matrix":
            raise UnknownStateError(f"Prometheus {self.url} answered a range query with {data.get('resultType')}")
        try:
            return [Series(dict(r["metric"]), [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise UnknownStateError(f"Prometheus {self.url} sent a malformed matrix for {promql!r}: {exc}") from exc

    def _call(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        with self._count_lock:
            self.query_count += 1
        # Prometheus stops evaluating at its own timeout; keep it just under ours so its answer wins.
        form = {**params, "timeout": f"{max(int(self.timeout * 900), 1)}ms"}
        url = f"{self.url}/api/v1/{endpoint}"
        last_problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
            with self._count_lock:
                self.request_count += 1
            try:
                # POST: long PromQL (many label values) would overflow a GET URL.
                resp = self._session.post(url, data=form, timeout=self.timeout)
            except requests.Timeout:
                raise UnknownStateError(
                    f"Prometheus {self.url} did not answer within {self.timeout:g}s", hint="raise --timeout"
                ) from None
            except requests.ConnectionError as exc:
                last_problem = f"cannot reach Prometheus at {self.url}: {_reason(exc)}"
                continue
            if resp.status_code in _TRANSIENT_STATUS:
                last_problem = f"Prometheus {self.url} answered HTTP {resp.status_code}: {_api_error(resp)}"
                continue
            return self._decode(resp, params["query"])
        raise UnknownStateError(last_problem, hint=f"gave up after {self.retries + 1} attempts")

    def _decode(self, resp: requests.Response, promql: str) -> dict[str, Any]:
        if resp.status_code == 400:
            raise BadInputError(f"Prometheus refused the query {promql!r}: {_api_error(resp)}")
        if resp.status_code in (401, 403):
            raise UnknownStateError(
                f"Prometheus {self.url} refused access (HTTP {resp.status_code})",
                hint="check --bearer-token / --basic-auth",
            )
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("data"), dict):
            raise UnknownStateError(
                f"Prometheus {self.url} answered HTTP {resp.status_code} for {promql!r}: {_api_error(resp)}"
            )
        data: dict[str, Any] = body["data"]
        return data


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


def _api_error(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200] or resp.reason
    if isinstance(body, dict) and "error" in body:
        return f"{body.get('errorType', 'error')}: {body['error']}"
    return resp.reason


def _reason(exc: requests.ConnectionError) -> str:
    # requests nests the socket error a few levels deep; the innermost text is the useful one.
    inner: BaseException = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    return str(inner) or type(inner).__name__
