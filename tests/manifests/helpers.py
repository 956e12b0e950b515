"""Helpers shared by the manifests tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from xzctl.spec import Fleet, bundled_example_path, load_fleet

Obj = dict[str, Any]


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


def variant(tmp_path: Path, *edits: tuple[str, str]) -> Fleet:
    text = bundled_example_path().read_text(encoding="utf-8")
    for pattern, repl in edits:
        text, n = re.subn(pattern, repl, text)
        assert n, pattern
    path = tmp_path / "fleet.yaml"
    path.write_text(text, encoding="utf-8")
    return load_fleet(path).fleet
