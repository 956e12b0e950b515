"""`provision region --all` runs every region in a process of its own, a bounded number at once, and one failing
region (an error, or its process dying) is reported beside the others' results."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fixtures.region_workers import FAKE_WORKER, HANG_SECONDS, most_at_once, spans
from xzctl.cli import run
from xzctl.errors import ExitCode
from xzctl.provision.regions import RegionOutcome, RegionRun, up_regions


def _run(tmp_path: Path) -> RegionRun:
    return RegionRun(fleet_path=tmp_path / "fleet.yaml", preview=False, state=tmp_path)


@pytest.mark.parametrize(("regions", "at_once"), [(6, 2), (3, 4)])
def test_regions_run_at_most_at_once_together_and_all_report(tmp_path: Path, regions: int, at_once: int) -> None:
    names = [f"region-{i}" for i in range(regions)]
    heard: list[str] = []
    outcomes = up_regions(
        names, _run(tmp_path), at_once=at_once, worker=FAKE_WORKER, on_done=lambda o: heard.append(o.region)
    )
    assert [o.region for o in outcomes] == names  # the spec's order, whatever order they finished in
    assert all(o.ok and o.result["changes"] == {"create": 3} for o in outcomes)
    assert sorted(heard) == sorted(names)
    assert set(spans(tmp_path)) == set(names)
    assert 1 < most_at_once(tmp_path) <= min(at_once, regions)  # concurrent, and bounded


def test_a_failed_and_a_dead_region_do_not_lose_the_others(tmp_path: Path) -> None:
    names = ["beijing", "locked-shanghai", "crash-guangzhou", "chengdu"]
    outcomes = {o.region: o for o in up_regions(names, _run(tmp_path), at_once=2, worker=FAKE_WORKER)}
    assert outcomes["beijing"].ok and outcomes["chengdu"].ok
    locked = outcomes["locked-shanghai"]
    assert (locked.ok, locked.exit_code) == (False, ExitCode.CONFLICT)
    assert "locked by another update" in (locked.error or "")
    dead = outcomes["crash-guangzhou"]
    assert not dead.ok and dead.exit_code == ExitCode.EXTERNAL and dead.error


def test_a_batch_that_ends_early_stops_the_regions_still_running(tmp_path: Path) -> None:
    def stop_here(outcome: RegionOutcome) -> None:
        raise RuntimeError(f"the operator's terminal went away after {outcome.region}")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="after beijing"):
        up_regions(["beijing", "hang-shanghai"], _run(tmp_path), at_once=2, worker=FAKE_WORKER, on_done=stop_here)
    assert time.monotonic() - started < HANG_SECONDS / 2  # stopped, not waited for (the session checks it is gone)


def test_an_outcome_as_json_keeps_the_region_result_and_the_error() -> None:
    ok = RegionOutcome("beijing", 12.34, result={"stack": "edge-beijing", "changes": {"create": 90}})
    failed = RegionOutcome("shanghai", 3.0, error="stack edge-shanghai is locked", exit_code=ExitCode.CONFLICT)
    assert ok.to_dict() == {
        "region": "beijing",
        "ok": True,
        "seconds": 12.3,
        "exit_code": 0,
        "error": None,
        "stack": "edge-beijing",
        "changes": {"create": 90},
    }
    assert failed.to_dict()["ok"] is False and failed.to_dict()["exit_code"] == ExitCode.CONFLICT


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "name one region or give --all"),
        (["beijing", "--all"], "name one region or give --all"),
        (["--all", "--pins", "pins.json"], "--pins names one region's images"),
    ],
)
def test_provision_region_takes_one_region_or_all(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["provision", "region", *args, "--preview", "--example"]) == ExitCode.BAD_INPUT
    assert said in capsys.readouterr().err
