"""What a release was built from, and whether the tree still builds it.

Every file of the repository that goes into an image (its build.yaml, which pins the Debian packages, the wheels by
sha256, the model's wheel and the upstream source's hash; the service package; the metrics contract copied in) is
hashed at build and recorded in the lock (`built.inputs`). `input_drift` recomputes them, without building, for the
version each image folder names (image.yaml `version`): a released version whose inputs moved must become a new
version, since a rebuild of it would no longer give its locked digest.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from xzctl.images.catalog import Catalog
from xzctl.images.inputs import BUILD_FILE, load_build_spec, sha256_file, stage_package

MODEL_PREFIX = "model:"  # inputs given at build (--model), not files of the tree: recorded, never recomputed


@dataclass(frozen=True)
class InputDrift:
    """One image folder whose version is not a release of the tree's inputs."""

    image: str
    version: str
    problem: str
    fix: str


def release_inputs(image_dir: Path) -> dict[str, str]:
    """sha256 of every repository file that goes into the image: its build.yaml and, for the service images, the
    files exactly as the build stages them (so a file the build starts copying in is an input from then on)."""
    hashes = {f"{image_dir.name}/{BUILD_FILE}": sha256_file(image_dir / BUILD_FILE)}
    if load_build_spec(image_dir).source is None:  # an upstream tree is pinned by its hash in build.yaml
        with tempfile.TemporaryDirectory(prefix="xzctl-inputs-") as tmp:
            staged = stage_package(Path(tmp), image_dir.parent)
            hashes |= {str(p.relative_to(staged)): sha256_file(p) for p in staged.rglob("*") if p.is_file()}
    return dict(sorted(hashes.items()))


def _changes(recorded: dict[str, str], now: dict[str, str]) -> list[str]:
    kept = {k: v for k, v in recorded.items() if not k.startswith(MODEL_PREFIX)}
    changed = [f"{k} changed" for k in sorted(kept.keys() & now.keys()) if kept[k] != now[k]]
    added = [f"{k} added" for k in sorted(now.keys() - kept.keys())]
    removed = [f"{k} removed" for k in sorted(kept.keys() - now.keys())]
    return changed + added + removed


def input_drift(catalog: Catalog) -> list[InputDrift]:
    """Every image built here whose folder version is unreleased, unrecorded, or released from other inputs."""
    found: list[InputDrift] = []
    for name, image in sorted(catalog.images.items()):
        folder = catalog.root / name
        if not (folder / BUILD_FILE).is_file():
            continue
        version = image.info.version
        build = f"xzctl images build {name} --version {version}"
        release = image.release(version)
        if release is None:
            found.append(InputDrift(name, version, "image.yaml names a version the lock has not released", build))
            continue
        if release.built is None or release.built.inputs is None:
            problem = "the lock has no record of the inputs this release was built from"
            found.append(
                InputDrift(
                    name, version, problem, f"raise image.yaml's version, then {build.split(' --', maxsplit=1)[0]}"
                )
            )
            continue
        changes = _changes(release.built.inputs, release_inputs(folder))
        if changes:
            found.append(
                InputDrift(
                    name,
                    version,
                    "inputs changed since the release: " + ", ".join(changes),
                    f"raise image.yaml's version, then {build.split(' --', maxsplit=1)[0]} (a released version never changes)",
                )
            )
    return found
