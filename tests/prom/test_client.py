"""PrometheusClient against a real Prometheus on 127.0.0.1 (scraping itself), plus a fault-injecting proxy.

The proxy forwards to the real Prometheus and only breaks the transport on purpose (503s, a hang,
a non-API body, an auth wall), which is how a real load balancer in front of Prometheus fails.
"""

from __future__ import annotations

import http.server
import math
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.fixtures.prometheus import bare_prometheus, refused_url
from xzctl.errors import BadInputError, UnknownStateError
from xzctl.prom import PrometheusClient

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with bare_prometheus(tmp_path_factory.mktemp("prom")) as url:
        yield url


@dataclass
class Proxy:
    url: str
    fail_first: int = 0  # answer 503 to this many requests first
    hang_seconds: float = 0.0
    garbage: bool = False
    require_auth: str | None = None
    seen_headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def proxy(prometheus_url: str) -> Iterator[Proxy]:
    state = Proxy(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.seen_headers.append(dict(self.headers))
            if state.fail_first > 0:
                state.fail_first -= 1
                return self._send(503, b"upstream busy")
            if state.hang_seconds:
                time.sleep(state.hang_seconds)
            if state.garbage:
                return self._send(200, b"<html>login page</html>")
            if state.require_auth and self.headers.get("Authorization") != state.require_auth:
                return self._send(401, b"unauthorized")
            req = urllib.request.Request(prometheus_url + self.path, data=body, method="POST")
            req.add_header("Content-Type", self.headers.get("Content-Type", ""))
            try:
                with urllib.request.urlopen(req, timeout=10) as up:
                    return self._send(up.status, up.read())
            except urllib.error.HTTPError as err:
                return self._send(err.code, err.read())

        def _send(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_instant_vector_carries_labels_value_and_timestamp(prometheus_url: str) -> None:
    with PrometheusClient(prometheus_url) as client:
        before = time.time()
        samples = client.query('up{job="self"}')
    assert len(samples) == 1
    (up,) = samples
    assert up.labels["job"] == "self"
    assert up.labels["region"] == "lab"
    assert up.value == 1.0
    assert before - 5 < up.timestamp <= time.time() + 1
    assert client.query_count == 1


def test_scalar_and_evaluation_time(prometheus_url: str) -> None:
    with PrometheusClient(prometheus_url) as client:
        (s,) = client.query("scalar(vector(6)) * 7", at=1_700_000_000)
        (ts,) = client.query("vector(time())", at=1_700_000_000.5)
    assert s.labels == {} and s.value == 42.0 and s.timestamp == 1_700_000_000
    assert ts.value == 1_700_000_000.5


def test_nan_is_returned_as_nan_not_dropped(prometheus_url: str) -> None:
    with PrometheusClient(prometheus_url) as client:
        (s,) = client.query("vector(0/0)")
    assert s.is_nan and math.isnan(s.value)


def test_query_range_returns_points_every_step(prometheus_url: str) -> None:
    with PrometheusClient(prometheus_url) as client:
        series = client.query_range('label_replace(vector(time()), "k", "v", "", "")', 1000.0, 1060.0, 15.0)
    assert len(series) == 1
    assert series[0].labels == {"k": "v"}
    assert series[0].points == [
        (1000.0, 1000.0),
        (1015.0, 1015.0),
        (1030.0, 1030.0),
        (1045.0, 1045.0),
        (1060.0, 1060.0),
    ]


def test_bad_query_is_bad_input_and_not_retried(proxy: Proxy) -> None:
    with PrometheusClient(proxy.url) as client, pytest.raises(BadInputError, match="bad_data"):
        client.query("sum(")
    assert client.request_count == 1


def test_bad_range_and_bad_url_are_bad_input() -> None:
    with pytest.raises(BadInputError, match="not an http"):
        PrometheusClient("127.0.0.1:9090")
    with pytest.raises(BadInputError, match="not both"):
        PrometheusClient("http://127.0.0.1:9", bearer_token="t", basic_auth=("u", "p"))
    with PrometheusClient("http://127.0.0.1:9") as client, pytest.raises(BadInputError, match="bad range"):
        client.query_range("up", 10, 5, 1)


def test_unreachable_is_unknown_after_bounded_retries() -> None:
    with refused_url() as url:
        client = PrometheusClient(url, retries=2, backoff_seconds=0.01)
        started = time.monotonic()
        with pytest.raises(UnknownStateError, match="cannot reach Prometheus") as err:
            client.query("up")
    assert time.monotonic() - started < 5
    assert client.request_count == 3
    assert err.value.exit_code == 3


def test_transient_503_is_retried_then_succeeds(proxy: Proxy) -> None:
    proxy.fail_first = 2
    with PrometheusClient(proxy.url, retries=2, backoff_seconds=0.01) as client:
        (s,) = client.query("vector(3)")
    assert s.value == 3.0
    assert client.request_count == 3 and client.query_count == 1


def test_persistent_503_gives_up_as_unknown(proxy: Proxy) -> None:
    proxy.fail_first = 10
    with (
        PrometheusClient(proxy.url, retries=1, backoff_seconds=0.01) as client,
        pytest.raises(UnknownStateError, match="HTTP 503"),
    ):
        client.query("vector(3)")
    assert client.request_count == 2


def test_timeout_is_unknown_within_the_bound(proxy: Proxy) -> None:
    proxy.hang_seconds = 3
    client = PrometheusClient(proxy.url, timeout=0.5, retries=2)
    started = time.monotonic()
    with pytest.raises(UnknownStateError, match=r"did not answer 'vector\(1\)' within 0.5s"):
        client.query("vector(1)")
    assert time.monotonic() - started < 2  # a timeout is not retried: the next try would hang too
    client.close()


def test_non_api_body_is_unknown(proxy: Proxy) -> None:
    proxy.garbage = True
    with PrometheusClient(proxy.url) as client, pytest.raises(UnknownStateError, match="login page"):
        client.query("vector(1)")


def test_bearer_token_and_headers_are_sent(proxy: Proxy) -> None:
    proxy.require_auth = "Bearer s3cret"
    with (
        PrometheusClient(proxy.url, headers={"X-Scope-OrgID": "fleet-a"}) as client,
        pytest.raises(UnknownStateError, match="refused access"),
    ):
        client.query("vector(1)")
    with PrometheusClient(proxy.url, bearer_token="s3cret", headers={"X-Scope-OrgID": "fleet-a"}) as client:
        (s,) = client.query("vector(1)")
    assert s.value == 1.0
    assert proxy.seen_headers[-1]["X-Scope-OrgID"] == "fleet-a"


def test_basic_auth_is_sent(proxy: Proxy) -> None:
    proxy.require_auth = "Basic b3BzOnB3"  # base64("ops:pw")
    with PrometheusClient(proxy.url, basic_auth=("ops", "pw")) as client:
        (s,) = client.query("vector(2)")
    assert s.value == 2.0


def test_query_many_keeps_order_and_counts_each_query(prometheus_url: str) -> None:
    with PrometheusClient(prometheus_url) as client:
        answers = client.query_many([f"vector({i})" for i in range(7)], at=1_700_000_000, parallel=3)
    assert [a[0].value for a in answers] == [float(i) for i in range(7)]
    assert all(a[0].timestamp == 1_700_000_000 for a in answers)
    assert client.query_count == 7


def test_query_many_raises_the_first_failure(proxy: Proxy) -> None:
    with PrometheusClient(proxy.url) as client, pytest.raises(BadInputError, match="bad_data"):
        client.query_many(["vector(1)", "sum(", "vector(2)"])
