"""The client's bounds against a hostile server: one deadline per query, a size cap, status before body."""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Callable

import pytest

from tests.fixtures.fault_server import VECTOR_OK, Fault, answer, endless, fault_server, response, silent, trickle
from xzctl.errors import BadInputError, UnknownStateError, XzctlError
from xzctl.prom import PrometheusClient

TIMEOUT = 0.5  # the bound is a parameter: what is proven is "within it", for any value
SLACK = 0.8  # thread start-up and socket teardown on a loaded 2-core machine


def _wait_closed(fault: Fault, seconds: float = 5.0) -> None:
    """The server sees every client connection closed (bounded wait on the condition)."""
    deadline = time.monotonic() + seconds
    while fault.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fault.open_connections == 0


def _elapsed(call: Callable[[], object]) -> tuple[float, XzctlError]:
    started = time.monotonic()
    with pytest.raises((UnknownStateError, BadInputError)) as caught:
        call()
    return time.monotonic() - started, caught.value


@pytest.mark.parametrize(
    "respond",
    [
        trickle(response(200, VECTOR_OK), seconds_per_byte=0.2),  # headers and body, a byte at a time
        trickle(b"HTTP/1.1 200 OK\r\n", seconds_per_byte=0.2),  # headers never end
        silent,
    ],
    ids=["trickle-all", "trickle-headers", "silent"],
)
def test_one_deadline_per_query_whatever_the_server_does(respond: Callable[..., None]) -> None:
    fault = Fault(respond)
    with fault_server(fault) as url:
        client = PrometheusClient(url, timeout=TIMEOUT, retries=3, backoff_seconds=0.05)
        took, error = _elapsed(lambda: client.query("up"))
        assert took < TIMEOUT + SLACK
        assert isinstance(error, UnknownStateError)
        assert "'up'" in error.message and f"within {TIMEOUT:g}s" in error.message
        assert error.hint == "raise --timeout"
        _wait_closed(fault)


def test_a_round_of_queries_shares_one_deadline_and_leaves_nothing_in_flight() -> None:
    fault = Fault(trickle(response(200, VECTOR_OK), seconds_per_byte=0.5))
    with fault_server(fault) as url:
        client = PrometheusClient(url, timeout=TIMEOUT, retries=0)
        # 12 queries at 4 in parallel: without a shared deadline that is 3 x TIMEOUT.
        took, error = _elapsed(lambda: client.query_many([f"q{i}" for i in range(12)]))
        assert took < TIMEOUT + SLACK
        assert isinstance(error, UnknownStateError)
        assert len(fault.requests) <= 4  # the queued ones never started
        _wait_closed(fault)


def test_a_body_over_the_cap_is_refused_naming_query_limit_and_flag() -> None:
    fault = Fault(endless())
    with fault_server(fault) as url:
        client = PrometheusClient(url, timeout=10, max_response_bytes=1_000_000)
        took, error = _elapsed(lambda: client.query("sum(up)"))
        assert took < 5
        assert error.message.endswith("answered 'sum(up)' with more than 1000000 bytes")
        assert error.hint is not None and "--max-response-size" in error.hint
        _wait_closed(fault)


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    fault = Fault(lambda sock: sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n"))
    with fault_server(fault) as url:
        _, error = _elapsed(lambda: PrometheusClient(url, max_response_bytes=1000).query("up"))
        assert "more than 1000 bytes" in error.message


@pytest.mark.parametrize(
    ("status", "body", "expected", "fragment"),
    [
        (500, VECTOR_OK, UnknownStateError, "HTTP 500"),  # a success body does not make a 500 data
        (404, VECTOR_OK, UnknownStateError, "HTTP 404"),
        (302, VECTOR_OK, UnknownStateError, "HTTP 302"),
        (400, b'{"status":"error","errorType":"bad_data","error":"parse error"}', BadInputError, "bad_data"),
        (200, b'{"status":"success","data":[]}', UnknownStateError, "without the API's JSON"),
        (200, b"[" * 100_000, UnknownStateError, "without the API's JSON"),  # nesting deeper than the parser
        (200, b"\xff\xfe garbage", UnknownStateError, "without the API's JSON"),
    ],
)
def test_status_decides_before_the_body(status: int, body: bytes, expected: type[Exception], fragment: str) -> None:
    fault = Fault(answer(status, body))
    with fault_server(fault) as url:
        _, error = _elapsed(lambda: PrometheusClient(url, retries=0).query("up"))
        assert type(error) is expected
        assert fragment in error.message


def test_a_compressed_body_is_refused() -> None:
    fault = Fault(answer(200, gzip.compress(VECTOR_OK), {"Content-Encoding": "gzip"}))
    with fault_server(fault) as url:
        _, error = _elapsed(lambda: PrometheusClient(url).query("up"))
        assert "gzip-encoded" in error.message
        assert b"accept-encoding: identity" in fault.requests[0].lower()


def test_a_good_answer_still_reads_and_counts() -> None:
    fault = Fault(answer(200, VECTOR_OK))
    with fault_server(fault) as url:
        client = PrometheusClient(url, retries=0)
        assert [s.value for s in client.query("vector(1)")] == [1.0]
        assert client.query_many(["a", "b"]) == [client.query("c")] * 2
        assert (client.query_count, client.request_count) == (4, 4)


@pytest.mark.parametrize(
    ("status", "error", "raised"),
    [
        (400, "parse error", BadInputError),
        # Thanos Query with a store down (partial answers off), or Prometheus "expanding series": not the query's fault
        (422, "expanding series: proxy Series()", UnknownStateError),
    ],
)
def test_a_malformed_query_is_bad_input_one_that_could_not_be_evaluated_is_unknown(
    status: int, error: str, raised: type[Exception]
) -> None:
    kind = "bad_data" if status == 400 else "execution"
    body = f'{{"status":"error","errorType":"{kind}","error":"{error}"}}'.encode()
    with (
        fault_server(Fault(answer(status, body))) as url,
        PrometheusClient(url, retries=0) as client,
        pytest.raises(raised, match=re.escape(error)),
    ):
        client.query("up")
