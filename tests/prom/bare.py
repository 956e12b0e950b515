"""A real Prometheus on 127.0.0.1 that scrapes only itself: no edge job, so every fleet query is empty."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from xzctl.errors import UnknownStateError
from xzctl.prom import PrometheusClient

READY_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def refused_url() -> Iterator[str]:
    """A loopback URL that refuses connections: its port stays bound, never listening, so nothing can take it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@contextmanager
def bare_prometheus(tmp: Path, extra_scrape_configs: str = "") -> Iterator[str]:
    """Start Prometheus (temp config and storage), wait for its first self-scrape, yield its URL, stop it.

    `extra_scrape_configs`: more YAML list items under scrape_configs (indented by two spaces).
    """
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus binary not installed (Debian package prometheus)")
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: self\n    static_configs: [{{targets: ['127.0.0.1:{port}'], labels: {{region: lab}}}}]\n"
        + extra_scrape_configs
    )
    args = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}"]
    proc = subprocess.Popen(
        [*args, f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            try:
                with PrometheusClient(url, timeout=2, retries=0) as client:
                    if client.query('up{job="self"}'):
                        break
            except UnknownStateError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus did not become ready within {READY_SECONDS:g} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
