"""A small client of the Prometheus HTTP API (instant and range queries) that fails closed, within bounds.

Every answer that does not let the caller trust the data (unreachable, timeout, non-2xx, too big, a
body that is not the API's JSON) raises UnknownStateError, so a check built on it can only say
"unknown", never "ok". A query Prometheus rejects as malformed (400) is the caller's mistake:
BadInputError; one it could not evaluate (422: "expanding series", a store of Thanos Query unreachable) is
unknown. Only transient failures are retried (connection errors, 502/503/504).

Bounds: each logical query has ONE deadline (`timeout` seconds) covering connect, headers, body and
retries; a watchdog shuts the socket at the deadline, so a server trickling one byte a second cannot
hold it. `query_many` gives all its queries the same deadline and stops the others at the first
failure, so a round of queries takes at most `timeout` and leaves nothing in flight. Bodies are read
streamed and refused beyond `max_response_bytes`. NaN and ±Inf values are returned as they are; the
checks treat them as missing data.
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import ssl
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from xzctl.errors import BadInputError, UnknownStateError
from xzctl.prom.deadline import Deadline
from xzctl.prom.results import Sample, Series, parse_matrix, parse_vector
from xzctl.redact import redact, register, split_url_credentials

# Where callers import them from since before the split.
__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "Deadline",
    "PrometheusClient",
    "Sample",
    "Series",
    "parse_matrix",
    "parse_vector",
]

_TRANSIENT_STATUS = frozenset({502, 503, 504})
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_CHUNK = 64 * 1024
_T = TypeVar("_T")


class _ExpiredError(Exception):
    """The deadline passed (or the round was stopped) while a request was in flight."""


class PrometheusClient:
    """Prometheus HTTP API client: `query`, `query_range`, with a count of the queries sent.

    `timeout` is the total deadline of one query (retries included) and is passed to Prometheus
    as the evaluation timeout; `retries` is how many times a transient failure is retried;
    `max_response_bytes` caps one answer's body.
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        on_query: Callable[[str], None] | None = None,
    ) -> None:
        url, in_url = split_url_credentials(url)
        basic_auth = basic_auth or in_url
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInputError(f"Prometheus URL {url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:9090")
        if bearer_token and basic_auth:
            raise BadInputError("give a bearer token or basic auth for Prometheus, not both")
        if timeout <= 0 or retries < 0 or max_response_bytes <= 0:
            raise BadInputError("Prometheus timeout and response size cap must be > 0, retries >= 0")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_response_bytes = max_response_bytes
        self.on_query = on_query  # told each PromQL before it is sent (`--show-queries`)
        self.query_count = 0  # logical queries (query + query_range), not counting retries
        self.request_count = 0  # HTTP requests, retries included
        self._count_lock = threading.Lock()
        # One answer decoded at a time: a decoded answer takes ~20x its bytes, so parallel queries must
        # not multiply that peak (the bytes themselves are capped per answer).
        self._decode_lock = threading.Lock()
        self._parts = parts
        self._headers = {
            **(headers or {}),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # a compressed body could expand past the size cap
        }
        if bearer_token:
            register(bearer_token)
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        if basic_auth:
            register(basic_auth[1])
            token = b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            register(token)
            self._headers["Authorization"] = f"Basic {token}"

    def close(self) -> None:
        """Nothing stays open between queries; kept so the client is a context manager."""

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, promql: str, at: float | None = None, *, deadline: Deadline | None = None) -> list[Sample]:
        """Evaluate `promql` at `at` (unix seconds; default now) and return its instant vector."""
        params: dict[str, str] = {"query": promql}
        if at is not None:
            params["time"] = _fmt(at)
        return self._call("query", params, deadline, parse_vector)

    def query_many(self, promqls: Sequence[str], at: float | None = None, *, parallel: int = 4) -> list[list[Sample]]:
        """Evaluate several instant queries at one instant, `parallel` at a time, within ONE `timeout`.

        Answers come back in the order of `promqls`. At the first failure the others are stopped
        (queued ones never start, running ones have their sockets shut) and that failure is raised.
        """
        calls = [partial(self._query_in, promql, at) for promql in promqls]
        return self.round(calls, parallel)

    def _query_in(self, promql: str, at: float | None, deadline: Deadline) -> list[Sample]:
        return self.query(promql, at, deadline=deadline)

    def round(self, calls: Sequence[Callable[[Deadline], _T]], parallel: int = 4) -> list[_T]:
        """Run `calls` (each given the round's deadline) `parallel` at a time; results in order."""
        if not calls:
            return []
        deadline = Deadline(self.timeout)
        pool = ThreadPoolExecutor(max_workers=max(1, min(parallel, len(calls))))
        try:
            futures = [pool.submit(call, deadline) for call in calls]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:
                error = future.exception() if future in done else None
                if error is not None:
                    raise error
            return [f.result() for f in futures]
        finally:
            deadline.stop()  # nothing stays in flight: queued calls are cancelled, running ones unblocked
            pool.shutdown(wait=True, cancel_futures=True)

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """Evaluate `promql` over [start, end] every `step` seconds (a matrix)."""
        if not (math.isfinite(start) and math.isfinite(end) and step > 0 and end >= start):
            raise BadInputError(f"bad range for {promql!r}: start {start}, end {end}, step {step}")
        params = {"query": promql, "start": _fmt(start), "end": _fmt(end), "step": _fmt(step)}
        return self._call("query_range", params, None, parse_matrix)

    def _call(
        self, endpoint: str, params: dict[str, str], shared: Deadline | None, parse: Callable[[dict[str, Any], str], _T]
    ) -> _T:
        with self._count_lock:
            self.query_count += 1
            if self.on_query is not None:
                self.on_query(params["query"])
        deadline = shared or Deadline(self.timeout)
        try:
            return self._attempts(endpoint, params, deadline, parse)
        finally:
            if shared is None:
                deadline.stop()

    def _attempts(
        self, endpoint: str, params: dict[str, str], deadline: Deadline, parse: Callable[[dict[str, Any], str], _T]
    ) -> _T:
        promql = params["query"]
        # Prometheus stops evaluating at its own timeout; keep it just under ours so its answer wins. Through Thanos
        # Query, an answer missing a store (a region's Prometheus) must fail, not read as complete; Prometheus
        # ignores the parameter.
        timeout = f"{max(int(deadline.remaining() * 900), 1)}ms"
        form = urlencode({**params, "timeout": timeout, "partial_response": "false"}).encode()
        path = f"{self._parts.path.rstrip('/')}/api/v1/{endpoint}"
        last_problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff_seconds * 2 ** (attempt - 1), deadline.remaining()))
            if deadline.expired:
                break
            with self._count_lock:
                self.request_count += 1
            try:
                status, body = self._post(path, form, deadline, promql)
            except _ExpiredError:
                break
            except OSError as exc:  # refused, reset, DNS, TLS: the transport, not the answer
                last_problem = f"cannot reach Prometheus at {self.url}: {redact(str(exc)) or type(exc).__name__}"
                continue
            if status in _TRANSIENT_STATUS:
                last_problem = f"Prometheus {self.url} answered HTTP {status}: {_api_error(body)}"
                continue
            with self._decode_lock:
                return parse(self._decode(status, body, promql), f"Prometheus {self.url} answering {promql!r}")
        if deadline.expired:
            raise UnknownStateError(
                f"Prometheus {self.url} did not answer {promql!r} within {deadline.seconds:g}s"
                + (f" (last: {last_problem})" if last_problem else ""),
                hint="raise --timeout",
            )
        raise UnknownStateError(last_problem, hint=f"gave up after {self.retries + 1} attempts")

    def _post(self, path: str, form: bytes, deadline: Deadline, promql: str) -> tuple[int, bytes]:
        host, port = self._parts.hostname or "", self._parts.port
        remaining = deadline.remaining()
        if remaining <= 0:
            raise _ExpiredError
        conn: http.client.HTTPConnection
        if self._parts.scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=remaining, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=remaining)
        sock: socket.socket | None = None
        resp: http.client.HTTPResponse | None = None
        try:
            conn.connect()
            sock = conn.sock
            deadline.watch(sock)
            conn.request("POST", path, body=form, headers=self._headers)
            resp = conn.getresponse()
            return resp.status, self._read(resp, deadline, promql)
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise _ExpiredError from exc
            if isinstance(exc, OSError):
                raise
            raise ConnectionError(f"broken HTTP answer: {type(exc).__name__}") from exc
        finally:
            if sock is not None:
                deadline.unwatch(sock)
            if resp is not None:
                resp.close()  # the response holds the socket open until closed
            conn.close()

    def _read(self, resp: http.client.HTTPResponse, deadline: Deadline, promql: str) -> bytes:
        cap = self.max_response_bytes
        too_big = UnknownStateError(
            f"Prometheus {self.url} answered {promql!r} with more than {cap} bytes",
            hint="raise --max-response-size, or aggregate the query",
        )
        encoding = (resp.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise UnknownStateError(f"Prometheus {self.url} sent a {encoding}-encoded body, asked for identity")
        length = resp.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise too_big
        body = bytearray()
        while chunk := resp.read1(_CHUNK):
            body += chunk
            if len(body) > cap:
                raise too_big
        if deadline.expired:
            raise _ExpiredError
        return bytes(body)

    def _decode(self, status: int, body: bytes, promql: str) -> dict[str, Any]:
        if status == 400:
            raise BadInputError(f"Prometheus refused the query {promql!r}: {_api_error(body)}")
        if status == 422:  # well-formed, but the data could not be read: a failing store, a series limit
            raise UnknownStateError(f"Prometheus {self.url} could not evaluate {promql!r}: {_api_error(body)}")
        if status in (401, 403):
            raise UnknownStateError(
                f"Prometheus {self.url} refused access (HTTP {status})",
                hint="check --bearer-token / --basic-auth",
            )
        if not 200 <= status < 300:  # whatever the body says: a proxy's 500 may carry a stale success
            raise UnknownStateError(f"Prometheus {self.url} answered HTTP {status} for {promql!r}: {_api_error(body)}")
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
        if (
            not isinstance(parsed, dict)
            or parsed.get("status") != "success"
            or not isinstance(parsed.get("data"), dict)
        ):
            raise UnknownStateError(
                f"Prometheus {self.url} answered HTTP {status} for {promql!r} without the API's JSON: {_api_error(body)}"
            )
        data: dict[str, Any] = parsed["data"]
        return data


def _fmt(seconds: float) -> str:
    return f"{seconds:.3f}"


def _api_error(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return redact(body[:200].decode("utf-8", "replace").strip()) or "(empty body)"
    if isinstance(parsed, dict) and "error" in parsed:
        return redact(f"{parsed.get('errorType', 'error')}: {str(parsed['error'])[:500]}")
    return "(no error text)"
