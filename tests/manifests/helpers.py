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


DIGEST = "@sha256:" + "a" * 64


def production_variant(tmp_path: Path) -> Fleet:
    """The bundled fleet as a production fleet: every spec image pinned by DIGEST."""
    return variant(
        tmp_path,
        (r"environment: staging", "environment: production"),
        (r"(image: [a-z0-9./-]+(?:-[a-z0-9]+)*)(:[\w.-]+)", rf"\1{DIGEST}"),
        (r'target: "s3://xiaozhi-backups"', f'target: "s3://xiaozhi-backups", image: "restic/restic{DIGEST}"'),
    )
