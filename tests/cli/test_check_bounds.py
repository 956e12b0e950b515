"""`check all --timeout 1` against a server trickling one byte a second: exit 3 within 3 x 1 s x rounds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.fault_server import VECTOR_OK, Fault, fault_server, response, trickle
from xzctl.cli import run


@pytest.mark.parametrize("extra", [[], ["--retries", "5"]], ids=["default", "retries"])
def test_trickling_prometheus_is_unknown_within_the_bound(
    extra: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XZCTL_STATE_DIR", str(tmp_path))  # no sandbox
    fault = Fault(trickle(response(200, VECTOR_OK), seconds_per_byte=1.0))
    with fault_server(fault) as url:
        started = time.monotonic()
        code = run(["check", "all", "--prometheus", url, "--timeout", "1", *extra])
        took = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 3
    # The first round (the instant queries of the snapshot) fails, so nothing else is asked: one round.
    assert took < 3 * 1 * 1
    assert "within 1s (raise --timeout)" in err
