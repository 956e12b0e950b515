"""Fail closed: every fault makes the affected node or check unknown with its reason, never ok."""

from __future__ import annotations

import http.server
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.fault_server import serving
from tests.fixtures.prometheus import bare_prometheus, refused_url
from tests.fixtures.sandbox import wait_for_query, wait_steady
from tests.fixtures.scenarios import WINDOW_SECONDS
from xzctl.checks import SnapshotOptions, Status, capacity_report, check_all, take_snapshot
from xzctl.checks.capacity import CapacityReport
from xzctl.errors import UnknownStateError
from xzctl.prom import PrometheusClient
from xzctl.sandbox import SandboxInfo, SimulatorClient
from xzctl.spec import Fleet, bundled_example_path, load_fleet

pytestmark = pytest.mark.live

OPTIONS = SnapshotOptions(window=f"{WINDOW_SECONDS}s", history_seconds=600, scrape_interval_seconds=1)
POLL_SECONDS = 0.5


def ready(box: SandboxInfo) -> SandboxInfo:
    """Until every node has been up for a full rate window since the reset."""
    wait_steady(box, 'count(up{job="xiaozhi-edge"} == 1)', box.nodes, WINDOW_SECONDS + 1)
    return box


def report_when(
    box: SandboxInfo,
    fleet: Fleet,
    node: str,
    fragment: str,
    *,
    timeout: float = 30,
    also: Callable[[CapacityReport], bool] = lambda _: True,
) -> CapacityReport:
    """Capacity reports until `node`'s reasons mention `fragment` and `also` holds (bounded), then that report."""
    deadline = time.monotonic() + timeout
    with PrometheusClient(box.prometheus_url) as client:
        while True:
            report = capacity_report(take_snapshot(client, fleet, OPTIONS))
            found = any(fragment in r for r in report.nodes[node].reasons) and also(report)
            if found or time.monotonic() > deadline:
                return report
            time.sleep(POLL_SECONDS)


def assert_unknown(report: CapacityReport, node: str, fragment: str) -> None:
    cap = report.nodes[node]
    assert cap.status is Status.UNKNOWN, cap.to_dict()
    assert any(fragment in r for r in cap.reasons), cap.reasons
    assert cap.headroom is None and cap.devices is None
    region = report.regions[cap.region]
    assert region.headroom is None and region.status in (Status.UNKNOWN, Status.CRIT)
    assert report.status in (Status.UNKNOWN, Status.CRIT)


def test_prometheus_unreachable_is_unknown(example_fleet: Fleet) -> None:
    with (
        refused_url() as url,
        PrometheusClient(url, retries=1, backoff_seconds=0.01) as client,
        pytest.raises(UnknownStateError, match="cannot reach Prometheus") as err,
    ):
        check_all(client, example_fleet, OPTIONS)
    assert err.value.exit_code == 3


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: a hung Prometheus."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_prometheus_timing_out_is_unknown(example_fleet: Fleet, silent_server: str) -> None:
    started = time.monotonic()
    with (
        PrometheusClient(silent_server, timeout=0.5) as client,
        pytest.raises(UnknownStateError, match=r"did not answer .* within 0\.5s"),
    ):
        check_all(client, example_fleet, OPTIONS)
    assert time.monotonic() - started < 5


def test_empty_results_make_every_node_unknown(tmp_path: Path, example_fleet: Fleet) -> None:
    with bare_prometheus(tmp_path) as url, PrometheusClient(url) as client:
        result = check_all(client, example_fleet, OPTIONS)
    assert all(n.status is Status.UNKNOWN for n in result.capacity.nodes.values())
    assert all("no scrape target" in n.reasons[0] for n in result.capacity.nodes.values())
    assert result.capacity.fleet.devices is None
    assert all(f.status is Status.UNKNOWN for f in result.failover.failures)
    assert result.cost.status is Status.UNKNOWN and result.cost.cost_per_device_month is None
    assert result.status is Status.UNKNOWN


def test_node_of_the_spec_without_metrics_is_unknown(sandbox: SandboxInfo, tmp_path: Path) -> None:
    box = ready(sandbox)
    doc = yaml.safe_load(bundled_example_path().read_text())
    extra = dict(doc["regions"]["beijing"]["edge_nodes"][0], id="bj-edge-04", public_hostname="bj-edge-04.example")
    doc["regions"]["beijing"]["edge_nodes"].append(extra)
    path = tmp_path / "more-nodes.yaml"
    path.write_text(yaml.safe_dump(doc))
    fleet = load_fleet(path).fleet
    # On a loaded machine one report can miss a scrape of bj-edge-01 (stale for a moment): wait for a clean one.

    def others_known(report: CapacityReport) -> bool:
        return report.nodes["bj-edge-01"].status is not Status.UNKNOWN

    report = report_when(box, fleet, "bj-edge-04", "no scrape target", also=others_known)
    assert_unknown(report, "bj-edge-04", "no scrape target for this node in job xiaozhi-edge")
    assert others_known(report), report.nodes["bj-edge-01"].reasons  # the others still have their verdicts


def test_node_down_is_unknown_not_ok(sandbox: SandboxInfo, example_fleet: Fleet) -> None:
    box = ready(sandbox)
    SimulatorClient(box.simulator_url).control({"action": "node_down", "node": "bj-edge-01"})
    assert_unknown(report_when(box, example_fleet, "bj-edge-01", "up == 0"), "bj-edge-01", "scrape target down")


def test_metrics_gap_is_unknown(sandbox: SandboxInfo, example_fleet: Fleet) -> None:
    box = ready(sandbox)
    SimulatorClient(box.simulator_url).control({"action": "metrics_gap", "node": "gz-edge-02", "seconds": 60})
    assert_unknown(report_when(box, example_fleet, "gz-edge-02", "up == 0"), "gz-edge-02", "up == 0")


def test_stale_exporter_is_unknown(sandbox: SandboxInfo, example_fleet: Fleet) -> None:
    box = ready(sandbox)
    SimulatorClient(box.simulator_url).control({"action": "stale", "node": "sh-edge-01", "enabled": True})
    # Frozen values are scraped with fresh timestamps; the CPU counters not moving for 3 scrapes gives it away.
    report = report_when(box, example_fleet, "sh-edge-01", "stale metrics")
    assert_unknown(report, "sh-edge-01", "stale metrics: CPU counters unchanged for 4s")


def test_nan_is_unknown(sandbox: SandboxInfo, example_fleet: Fleet) -> None:
    box = ready(sandbox)
    SimulatorClient(box.simulator_url).control({"action": "stale", "node": "sh-edge-02", "enabled": True})
    # Once the whole 5 s window is frozen, no request increased: histogram_quantile answers NaN.
    report = report_when(box, example_fleet, "sh-edge-02", "is NaN")
    assert_unknown(report, "sh-edge-02", "p95 latency of end_to_end is NaN")


@pytest.fixture
def old_samples_exporter() -> Iterator[str]:
    """An exporter whose samples carry explicit timestamps a minute old, as a stuck federation or push path does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            stamp = int((time.time() - 60) * 1000)
            body = f'xiaozhi_active_devices 42 {stamp}\nnode_cpu_seconds_total{{cpu="0",mode="idle"}} 7 {stamp}\n'
            payload = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        yield f"127.0.0.1:{port}"


def test_old_samples_are_stale_by_their_timestamp(
    tmp_path: Path, example_fleet: Fleet, old_samples_exporter: str
) -> None:
    job = (
        "  - job_name: xiaozhi-edge\n"
        f"    static_configs: [{{targets: ['{old_samples_exporter}'], labels: {{region: beijing, node: bj-edge-01}}}}]\n"
    )
    with bare_prometheus(tmp_path, job) as url:
        wait_for_query(url, 'up{job="xiaozhi-edge"}', lambda s: bool(s) and s[0].value == 1)
        with PrometheusClient(url) as client:
            report = capacity_report(take_snapshot(client, example_fleet, OPTIONS))
    node = report.nodes["bj-edge-01"]
    assert node.status is Status.UNKNOWN
    # up == 1 and the series is there, but time() - timestamp() is about 60 s, more than 2 x 1 s.
    assert any(
        r.startswith("stale metrics: newest sample") and "old (> 2 x 1 s scrape interval)" in r for r in node.reasons
    )
