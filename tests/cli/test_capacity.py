"""`xzctl capacity forecast`: bad --at, --events and --horizon are refused in one line before any query."""

from __future__ import annotations

from pathlib import Path

import pytest

from xzctl.cli import run


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--at", "yesterday"], "--at 'yesterday': give a time as 2026-05-28T10:00Z or unix seconds"),
        (["--at", "2999-01-01T00:00Z"], "--at 2999-01-01T00:00Z: in the future"),
        (["--at", "32503680000"], "in the future"),
        (["--events", "{missing}"], "--events {missing}: No such file or directory"),
        (["--horizon", "30d"], "--horizon must be between 1h and 14d"),
    ],
)
def test_bad_forecast_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], said: str
) -> None:
    missing = str(tmp_path / "missing.yaml")
    argv = [a.format(missing=missing) for a in args]
    # Nothing listens on the port: the input is refused before the history is asked for.
    assert run(["capacity", "forecast", "--prometheus", "http://127.0.0.1:9", *argv]) == 2
    err = capsys.readouterr().err
    assert said.format(missing=missing) in err and len(err.strip().splitlines()) == 1
