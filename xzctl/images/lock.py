"""The lock's bookkeeping: record a built release (with its bill of materials) or confirm a rebuild's digest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from xzctl.errors import CheckFailedError
from xzctl.images.assemble import BuildResult
from xzctl.images.catalog import LOCK_FILE, Release
from xzctl.spec.load import SAFE_LOADER
from xzctl.state import atomic_write


def record_in_lock(catalog_dir: Path, result: BuildResult, *, today: str | None = None) -> bool:
    """Add the release to the lock, or confirm it: a rebuild of a locked version must give the locked digest.

    Returns True when the lock changed. A differing digest for a version already locked is a failed check, never an
    overwrite: the lock is what nodes run. A rebuild to the locked digest records its inputs (that build showed
    these inputs give that digest), so a release made before inputs were recorded gets them.
    """
    path = catalog_dir / LOCK_FILE
    data: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    releases = data.setdefault("images", {}).setdefault(result.name, [])
    for entry in releases:
        if entry.get("version") == result.version:
            if entry.get("digest") != result.digest:
                raise CheckFailedError(
                    f"{result.name} {result.version}: this build's digest {result.digest} differs from the lock's "
                    f"{entry.get('digest')}",
                    hint="bump --version for new inputs; see inference_images/README.md on reproducibility",
                )
            built, inputs = entry.get("built"), result.record.inputs
            if built is None or inputs is None or built.get("inputs") == inputs:
                return False
            built["inputs"] = inputs
            _write(path, data)
            return True
    release = Release(
        version=result.version,
        digest=result.digest,
        released=today or datetime.now(UTC).strftime("%Y-%m-%d"),
        built=result.record,
    )
    releases.append(release.model_dump(mode="json", exclude_none=True))
    _write(path, data)
    return True


def _write(path: Path, data: dict[str, Any]) -> None:
    head = "".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True) if line.startswith("#"))
    atomic_write(path, head + _lock_text(data))


def _lock_text(data: dict[str, Any]) -> str:
    """The lock as people read it: one line per release, a built release's bill of materials in block style."""
    lines = [f"{key}: {data[key]}" for key in data if key not in ("images", "external")] + ["images:"]
    for name, releases in data["images"].items():
        lines.append(f"  {name}:")
        for release in releases:
            flow = "built" not in release
            text = yaml.safe_dump([release], sort_keys=False, width=400 if flow else 120, default_flow_style=None)
            if flow:
                text = "- " + yaml.safe_dump(release, sort_keys=False, width=400, default_flow_style=True)
            lines += ["    " + ln for ln in text.rstrip().splitlines()]
    if data.get("external"):
        lines.append("external:")
        lines += [
            "  - " + yaml.safe_dump(e, sort_keys=False, width=400, default_flow_style=True).strip()
            for e in data["external"]
        ]
    return "\n".join(lines) + "\n"
