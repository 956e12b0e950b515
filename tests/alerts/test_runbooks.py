"""One runbook per alert, one alert per runbook, each with its four sections and concrete steps."""

from __future__ import annotations

import pytest

from xzctl.alerts import ALERT_NAMES
from xzctl.alerts.runbooks import SECTIONS, missing_sections, read_runbook, runbook_dir, runbook_names
from xzctl.errors import NotFoundError


def test_runbooks_and_alerts_match_one_to_one() -> None:
    assert sorted(runbook_names()) == sorted(ALERT_NAMES)


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_runbook_has_every_section_and_concrete_steps(alert: str) -> None:
    text = read_runbook(alert)
    assert text.startswith(f"# {alert}\n")
    assert missing_sections(text) == []
    assert "xzctl " in text
    assert "kubectl " in text
    assert "```promql" in text


def test_missing_sections_names_what_is_absent() -> None:
    assert missing_sections("# X\n## Meaning\n## Mitigation\n") == ["Impact", "Diagnosis"]
    assert SECTIONS == ("Meaning", "Impact", "Diagnosis", "Mitigation")


def test_unknown_alert_lists_the_known_ones_and_names_are_case_insensitive() -> None:
    assert read_runbook("edgenodedown") == read_runbook("EdgeNodeDown")
    with pytest.raises(NotFoundError, match="no runbook for alert 'Nope'") as err:
        read_runbook("Nope")
    assert "EdgeNodeDown" in (err.value.hint or "")


def test_the_packaged_runbooks_are_the_repository_copy() -> None:
    from pathlib import Path

    repo_copy = Path(__file__).resolve().parents[2] / "runbooks"
    assert runbook_dir().resolve() == repo_copy.resolve()
