"""Runbooks: one Markdown file per alert in runbooks/, shipped as package data.

The one copy lives in the repository's runbooks/ folder (so each alert's runbook_url opens it on the
forge); xzctl/data/runbooks is a symlink to it that setuptools copies into the wheel, so an installed
xzctl finds the same files.
"""

from __future__ import annotations

import re
from pathlib import Path

from xzctl import data_path
from xzctl.errors import NotFoundError

SECTIONS = ("Meaning", "Impact", "Diagnosis", "Mitigation")


def runbook_dir() -> Path:
    return data_path("runbooks")


def runbook_names() -> list[str]:
    return sorted(p.stem for p in runbook_dir().glob("*.md"))


def read_runbook(alert: str) -> str:
    """The runbook of `alert` (case-insensitive), or NotFoundError listing the known ones."""
    names = {n.lower(): n for n in runbook_names()}
    name = names.get(alert.lower())
    if name is None:
        raise NotFoundError(f"no runbook for alert {alert!r}", hint=f"one of: {', '.join(sorted(names.values()))}")
    return (runbook_dir() / f"{name}.md").read_text(encoding="utf-8")


def missing_sections(text: str) -> list[str]:
    """The required `## Section` headings a runbook lacks."""
    present = set(re.findall(r"^##\s+(.+?)\s*$", text, flags=re.MULTILINE))
    return [s for s in SECTIONS if s not in present]


def sections(text: str) -> dict[str, str]:
    """`## Heading` -> its text, for machines (`xzctl runbook ALERT -o json`)."""
    parts = re.split(r"^##\s+(.+?)\s*$", text, flags=re.MULTILINE)
    return {heading: body.strip() for heading, body in zip(parts[1::2], parts[2::2], strict=True)}
