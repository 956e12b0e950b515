"""Known events: validated where the spec has them and in an --events file, refused in one line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from xzctl.errors import BadInputError, FleetSpecError
from xzctl.spec import bundled_example_path, load_fleet
from xzctl.spec.events import KnownEvent, read_events

EXAMPLE = bundled_example_path().read_text(encoding="utf-8")


def test_the_example_names_a_holiday_for_every_region() -> None:
    (event,) = load_fleet(bundled_example_path()).fleet.known_events
    assert event.name == "Spring Festival" and event.factor == 0.6 and event.regions == []
    begin, end = event.span()
    assert end - begin == 7 * 86400 and event.applies_to("beijing")


def test_an_event_of_an_unknown_region_is_a_spec_error(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text(EXAMPLE.replace("factor: 0.6}", "factor: 0.6, regions: [beijing, atlantis]}"), encoding="utf-8")
    with pytest.raises(FleetSpecError) as caught:
        load_fleet(spec)
    (problem,) = [p for p in caught.value.problems if p.severity == "error"]
    assert problem.path == "known_events[0].regions" and "no region 'atlantis'" in problem.message


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            "- {name: x, start: 2027-01-02, end: 2027-01-01, factor: 2}",
            "0: Value error, end 2027-01-01 is before start",
        ),
        ("- {name: x, start: 2027-01-01, end: 2027-06-01, factor: 2}", "lasts at most 92 days"),
        ("- {name: x, start: 2027-01-01, end: 2027-01-01, factor: 0}", "0.factor: Input should be greater than 0"),
        ("- {name: x, start: 2027-01-01, end: 2027-01-01, factor: 2, regions: [Bad Name]}", "0.regions.0:"),
        ("- {name: x, start: 2027-01-01, end: 2027-01-01, factor: 2, when: soon}", "0.when: Extra inputs"),
        ("- {name: [x", "not YAML"),
        ("{name: x}", "Input should be a valid list"),
    ],
)
def test_a_bad_events_file_is_refused_in_one_line(tmp_path: Path, text: str, said: str) -> None:
    path = tmp_path / "events.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BadInputError, match=r"^--events .*events.yaml: ") as caught:
        read_events(path)
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_an_events_file_is_read_bounded(tmp_path: Path) -> None:
    path = tmp_path / "events.yaml"
    path.write_text("- {name: launch, start: 2027-03-01, end: 2027-03-03, regions: [shanghai], factor: 1.4}\n")
    assert read_events(path) == [
        KnownEvent(name="launch", start=date(2027, 3, 1), end=date(2027, 3, 3), regions=["shanghai"], factor=1.4)
    ]
    path.write_text("# nothing yet\n")
    assert read_events(path) == []
    path.write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(BadInputError, match="more than 1,048,576 bytes"):
        read_events(path)
    with pytest.raises(BadInputError, match="No such file"):
        read_events(tmp_path / "missing.yaml")
