"""The capacity sweep's decisions on a fake node whose first-audio p95 grows with its devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from xzctl.errors import BadInputError
from xzctl.loadtest.settings import LoadSettings
from xzctl.loadtest.summary import FIRST_AUDIO, STT, TURN, Snapshot, Timing
from xzctl.loadtest.sweep import Measured, SweepPlan, build_profile, local_hardware, parse_steps, sweep
from xzctl.spec.measured import load_capacity_profile, profile_document

BASE = LoadSettings("ws://127.0.0.1:9/xiaozhi/v1/", "http://127.0.0.1:9/xiaozhi/ota/", devices=1, duration=60.0)
WHAT = Measured(
    "sandbox-2core",
    {"xiaozhi-server": "registry.example/xiaozhi-server:0.9.6-1@sha256:" + "0" * 64},
    "openai: whisper",
    1,
    "xzctl loadtest sweep",
)


def fake_node(
    p95_per_device: float, fail_from: int | None = None, cut_at: int | None = None
) -> tuple[list[LoadSettings], object]:
    seen: list[LoadSettings] = []

    def run_step(settings: LoadSettings) -> Snapshot:
        seen.append(settings)
        n = settings.devices
        turns = 3 * n
        failed = 1 if fail_from is not None and n >= fail_from else 0
        fa = Timing(turns - failed, p50=p95_per_device * n / 2, p95=p95_per_device * n)
        timings = {FIRST_AUDIO: fa, STT: Timing(turns, 0.5, 0.8), TURN: Timing(turns, 2.0, 4.0)}
        return Snapshot(n, turns, failed, timings, {"timeout": failed} if failed else {}, interrupted=n == cut_at)

    return seen, run_step


def test_the_sweep_stops_at_the_first_step_over_the_kpi_and_the_knee_is_the_last_within() -> None:
    seen, run_step = fake_node(0.9)  # p95 0.9 s per device: 3 devices 2.7 s, 4 devices 3.6 s
    curve, interrupted = sweep(BASE, SweepPlan((1, 2, 3, 4, 6, 8), 90.0, past_knee=0), run_step)  # type: ignore[arg-type]
    assert not interrupted
    assert [s.devices for s in seen] == [1, 2, 3, 4]  # bounded: nothing after the breach (past_knee=0)
    assert all(s.duration == 90.0 and s.ramp == 0.0 for s in seen)
    profile = build_profile(curve, SweepPlan((1, 2, 3, 4, 6, 8), 90.0, past_knee=0), BASE, WHAT)
    assert profile.devices_per_node == 3
    assert profile.curve[-1].first_audio_p95 == pytest.approx(3.6)
    assert profile.turn_every_seconds == 20.0 and profile.node_class == "sandbox-2core"


def test_failures_over_the_limit_end_the_capacity_even_when_fast() -> None:
    _, run_step = fake_node(0.1, fail_from=2)  # one failed turn in 6: far over 0.1 %
    curve, _ = sweep(BASE, SweepPlan((1, 2, 4, 8), 60.0), run_step)  # type: ignore[arg-type]
    assert [p.devices for p in curve] == [1, 2, 4]  # one step past the knee, for the curve's shape
    assert build_profile(curve, SweepPlan((1, 2, 4, 8), 60.0), BASE, WHAT).devices_per_node == 1


def test_a_node_over_the_kpi_at_one_device_has_no_capacity() -> None:
    _, run_step = fake_node(8.8)
    curve, _ = sweep(BASE, SweepPlan((1, 2), 60.0), run_step)  # type: ignore[arg-type]
    assert build_profile(curve, SweepPlan((1, 2), 60.0), BASE, WHAT).devices_per_node == 0


def test_ctrl_c_keeps_the_steps_done_and_records_nothing_of_the_cut_one() -> None:
    _, run_step = fake_node(0.5, cut_at=2)
    curve, interrupted = sweep(BASE, SweepPlan((1, 2, 3), 60.0), run_step)  # type: ignore[arg-type]
    assert interrupted and [p.devices for p in curve] == [1]
    with pytest.raises(BadInputError, match="no step"):
        build_profile([], SweepPlan((1,), 60.0), BASE, WHAT)


def test_the_written_profile_reads_back(tmp_path: Path) -> None:
    _, run_step = fake_node(0.9)
    plan = SweepPlan((1, 2, 3, 4), 60.0)
    curve, _ = sweep(BASE, plan, run_step)  # type: ignore[arg-type]
    path = tmp_path / "sandbox-2core.yaml"
    path.write_text(profile_document(build_profile(curve, plan, BASE, WHAT)))
    assert load_capacity_profile(path).devices_per_node == 3
    assert path.read_text().startswith("# Capacity of one sandbox-2core node, measured by `xzctl loadtest sweep`")


@pytest.mark.parametrize("text", ["", "0,1", "2,1", "1,1", "a,b", "1,2,", ",".join(str(i) for i in range(1, 30))])
def test_bad_steps(text: str) -> None:
    with pytest.raises(BadInputError, match="--steps"):
        parse_steps(text)


def test_steps() -> None:
    assert parse_steps("1,2,4,8") == (1, 2, 4, 8)


def test_local_hardware_reads_proc(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text("processor : 0\nmodel name\t: Test CPU @ 2.0GHz\n")
    (tmp_path / "meminfo").write_text("MemTotal:        8388608 kB\n")
    hw = local_hardware(tmp_path)
    assert (hw.cpu_model, hw.memory_gb) == ("Test CPU @ 2.0GHz", 8.0) and hw.cpu_cores >= 1
    assert local_hardware(tmp_path / "none").cpu_model == "unknown"
