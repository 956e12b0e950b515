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


def test_the_forecast_table_matches_golden() -> None:
    """80 columns and wide: the model used beside the naive, coverage, events, notes and warnings in words."""
    import io

    from rich.console import Console

    from tests.fixtures.golden import assert_golden
    from xzctl.checks.forecast import Forecast, LoadForecast, RegionForecast
    from xzctl.checks.forecast_models import NAIVE, SeriesForecast
    from xzctl.cli.capacity import forecast_table

    values = [100.0 + 10 * (h % 24 > 8) for h in range(48)]
    devices = SeriesForecast(
        values=values,
        lower=[v * 0.9 for v in values],
        upper=[v * 1.2 for v in values],
        model="MSTL+AutoTheta",
        mape=0.0281,
        naive_mape=0.0327,
        coverage=0.97,
        backtest_hours=48,
        candidates={NAIVE: 0.0327, "MSTL+AutoTheta": 0.0281},
    )
    beijing = RegionForecast(
        region="beijing",
        devices_now=104.0,
        observed_peak=120.0,
        devices=devices,
        load=LoadForecast(0.5, [v / 2 for v in values], [v * 0.45 for v in values], [v * 0.6 for v in values]),
        peak_24h=132.0,
        peak_7d=132.0,
        history_hours=672,
        events=["Spring Festival"],
        replicas_needed={"asr": 8},
        replicas_max={"asr": 21},
        nodes=3,
        nodes_needed=1,
        notes=["beijing: 6 hours of history missing (6 h from 2026-05-20 03:00 UTC), filled from a week before"],
        warnings=["beijing: the forecast peak of 132 devices fills 1 of 3 edge nodes"],
    )
    result = Forecast(horizon_hours=48, start=0.0, regions={"beijing": beijing}, schedule={})
    text = ""
    for width, wide in ((80, False), (160, True)):
        out = io.StringIO()
        forecast_table(Console(file=out, width=width, color_system=None, force_terminal=False), result, wide=wide)
        text += out.getvalue()
    assert "MSTL+AutoTheta" in text and "events: beijing: Spring Festival" in text
    assert_golden(Path(__file__).parent / "golden" / "capacity-forecast.txt", text)
