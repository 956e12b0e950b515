"""Capacity profiles: the knee of a curve, and a profile file that is read, not trusted."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.measured import fake_profile, measured_example
from xzctl.errors import BadInputError, FleetSpecError
from xzctl.plan import build_plan
from xzctl.spec import load_fleet
from xzctl.spec.measured import CurvePoint, knee, load_capacity_profile, profile_document


def pt(devices: int, p95: float | None, turns: int = 30, failed: int = 0) -> CurvePoint:
    return CurvePoint(
        devices=devices,
        turns=turns,
        failed=failed,
        first_audio_p50=p95,
        first_audio_p95=p95,
        stt_p95=None,
        turn_p95=None,
    )


@pytest.mark.parametrize(
    ("curve", "expected"),
    [
        ([pt(1, 1.0), pt(2, 2.0), pt(4, 3.5)], 2),
        ([pt(1, 1.0), pt(2, 3.0)], 2),  # at the KPI is within it
        ([pt(1, 4.0), pt(2, 2.0)], 0),  # a lucky larger step after a breach is noise, not capacity
        ([pt(1, 1.0), pt(2, 1.0, failed=1)], 1),  # 1 failed in 30 is over 0.1 %
        ([pt(1, 1.0, turns=1000, failed=1), pt(2, 1.0, turns=0)], 1),  # 0.1 % passes; no turns at all is no capacity
        ([pt(1, None)], 0),
        ([pt(4, 2.0), pt(2, 1.0)], 4),  # order of the file does not matter
    ],
)
def test_knee(curve: list[CurvePoint], expected: int) -> None:
    assert knee(curve, 3.0, 0.001) == expected


def profile(**changes: Any) -> dict[str, Any]:
    curve = [pt(1, 1.0).model_dump(), pt(2, 3.6).model_dump()]
    return {
        "node_class": "sandbox-2core",
        "measured_at": "2026-12-04T16:00:00+00:00",
        "hardware": {"cpu_cores": 2, "cpu_model": "x", "memory_gb": 8.0},
        "images": {"server": "upstream 0.9.6"},
        "asr_path": "openai: whisper",
        "server_processes": 1,
        "turn_every_seconds": 20.0,
        "step_seconds": 120.0,
        "kpi_first_audio_seconds": 3.0,
        "max_failed_ratio": 0.001,
        "curve": curve,
        "devices_per_node": 1,
        "command": "xzctl loadtest sweep",
        **changes,
    }


def test_a_profile_reads(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile()))
    assert load_capacity_profile(path).devices_per_node == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"devices_per_node": 150}, "devices_per_node 150 is not the knee of its curve"),  # a hand-written figure
        ({"curve": []}, "not a profile"),
        ({"surprise": 1}, "not a profile"),
        ({"node_class": "Bad Class"}, "not a profile"),
    ],
)
def test_a_profile_that_no_sweep_wrote_is_refused(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile(**changes)))
    with pytest.raises(BadInputError, match=message):
        load_capacity_profile(path)


def test_missing_or_huge_files(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as missing:
        load_capacity_profile(tmp_path / "nope.yaml")
    assert missing.value.one_line().endswith("No such file or directory (measure one: xzctl loadtest sweep)")
    huge = tmp_path / "huge.yaml"
    huge.write_text("#" * (1024 * 1024 + 10))
    with pytest.raises(BadInputError, match="larger than 1024 KiB"):
        load_capacity_profile(huge)
    bad = tmp_path / "bad.yaml"
    bad.write_text("{{{")
    with pytest.raises(BadInputError, match="not a profile"):
        load_capacity_profile(bad)


def test_a_spec_naming_a_profile_reads_it_and_warns_with_both_numbers(tmp_path: Path) -> None:
    loaded = measured_example(tmp_path, 120)
    node = loaded.fleet.node("bj-edge-01")
    assert node.capacity.measured_devices == (120, str(tmp_path / "edge-standard.yaml"))
    assert node.capacity.carried_devices == 120 and node.capacity.max_devices == 150
    warnings = [w.render() for w in loaded.warnings if "measured" in w.message]
    assert len(warnings) == 1  # one per profile and max_devices, not one per node
    assert "max_devices 150 is more than the 120 devices per node measured for class edge-standard" in warnings[0]


def test_a_measurement_above_max_devices_keeps_the_spec_cap(tmp_path: Path) -> None:
    loaded = measured_example(tmp_path, 200)
    assert loaded.fleet.node("bj-edge-01").capacity.carried_devices == 150
    assert not [w for w in loaded.warnings if "measured" in w.message]


def test_a_spec_naming_a_missing_or_forged_profile_is_refused(tmp_path: Path) -> None:
    forged = profile_document(fake_profile(120)).replace("devices_per_node: 120", "devices_per_node: 150")
    with pytest.raises(FleetSpecError, match="devices_per_node 150 is not the knee of its curve"):
        measured_example(tmp_path, 120, forged)
    (tmp_path / "edge-standard.yaml").unlink()
    with pytest.raises(FleetSpecError) as missing:
        load_fleet(tmp_path / "fleet.yaml")
    assert "capacity.measured" in missing.value.one_line() and "No such file" in missing.value.one_line()


COMMITTED = Path(__file__).resolve().parents[2] / "capacity" / "sandbox-2core.yaml"


def test_the_committed_profile_is_a_sweep_of_this_machine_class_and_the_plan_reads_it(tmp_path: Path) -> None:
    profile = load_capacity_profile(COMMITTED)  # its knee is checked against its curve on load
    assert profile.node_class == "sandbox-2core" and profile.hardware.cpu_cores == 2
    assert profile.command.startswith("xzctl loadtest sweep") and len(profile.curve) >= 2
    # what served the turns is named by image version and digest (the sandbox's processes are no image)
    released = r"[a-z0-9./-]+:[0-9][0-9A-Za-z.-]*@sha256:[0-9a-f]{64}"
    assert all(re.fullmatch(released, profile.images[n]) for n in ("xiaozhi-server", "asr", "tts")), profile.images
    plan = build_plan(measured_example(tmp_path, profile_text=COMMITTED.read_text()).fleet)
    beijing = next(r for r in plan.rows if r.section == "capacity" and r.subject == "beijing")
    assert beijing.limit == 3 * min(150, profile.devices_per_node)
    assert "slots as measured" in beijing.reason
