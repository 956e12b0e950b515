"""Build an inference image with no Docker and no registry: mmdebstrap makes a Debian root file system from pinned
packages, `pip download` fetches hash-pinned wheels on the host, buildah (vfs storage, chroot isolation) assembles
them with the service package and the model into one layer, and writes an OCI layout under the state dir.

The inputs of an image are its `build.yaml`; the outputs are the OCI layout, the manifest digest and a bill of
materials (every Debian package and wheel with version and hash, the model file's hash), recorded in the lock.
Root file systems are cached by the hash of their inputs, wheels by file name (pip checks their hashes), so a
rebuild spends its time in buildah only.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from xzctl.errors import BadInputError, CheckFailedError, NotFoundError
from xzctl.images.assemble import BuildResult, assemble
from xzctl.images.catalog import SEMVER, default_catalog_dir, load_catalog
from xzctl.images.inputs import (
    apt_sources,
    buildah_env,
    cache_dir,
    layout_dir,
    load_build_spec,
    model_file,
    run_tool,
    sha256_file,
    stage_package,
)
from xzctl.images.lock import record_in_lock
from xzctl.images.provenance import MODEL_PREFIX, release_inputs

# Names importers take from this module since before the split into inputs/assemble/lock.
__all__ = [
    "BuildResult",
    "apt_sources",
    "build_image",
    "buildah_env",
    "cache_dir",
    "layout_digest",
    "layout_dir",
    "load_build_spec",
    "model_file",
    "record_in_lock",
    "run_tool",
    "stage_package",
    "verify_built",
]


def build_image(
    name: str,
    *,
    state_dir: Path,
    version: str | None = None,
    catalog_dir: Path | None = None,
    model: Path | None = None,
    source: Path | None = None,
    env: dict[str, str] | None = None,
    lock: bool = True,
    gpu: bool = False,
) -> BuildResult:
    """`xzctl images build NAME`: build from the catalog folder's build.yaml and record the digest in the lock."""
    catalog = load_catalog(catalog_dir)
    image = catalog.get(name)
    version = version or image.info.version
    if not _is_semver(version):
        raise BadInputError(f"--version {version!r} is not a semantic version", hint="e.g. 1.2.0")
    spec = load_build_spec(catalog.root / name)
    inputs = release_inputs(catalog.root / name)
    result = assemble(
        name,
        version,
        spec,
        service=image.info.service,
        repository=image.info.repository,
        state_dir=state_dir,
        catalog_root=catalog.root,
        model=model,
        source=source,
        extra_env=env,
        gpu=gpu,
    )
    # the tree's files as they were when the build began, and a model given at build by its hash
    given = {f"{MODEL_PREFIX}{key}": value for key, value in (result.record.model or {}).items()} if model else {}
    result = replace(result, record=result.record.model_copy(update={"inputs": inputs | given}))
    return replace(result, locked=record_in_lock(catalog.root, result) if lock else False)


def _is_semver(version: str) -> bool:
    import re

    return re.fullmatch(SEMVER, version) is not None


def layout_digest(layout: Path, tag: str) -> str | None:
    """The manifest digest the OCI layout's index names for `tag`, None when the tag is not there."""
    try:
        index = json.loads((layout / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return str(entry["digest"])
    return None


def verify_built(name: str, version: str, *, state_dir: Path, catalog_dir: Path | None = None) -> str:
    """Check a built image against the lock: the layout's digest is the locked one and every blob hashes to its
    name (the manifest and what it lists). Returns the digest; raises CheckFailedError on any difference."""
    catalog = load_catalog(catalog_dir or default_catalog_dir())
    release = catalog.get(name).release(version)
    if release is None:
        raise NotFoundError(f"{name} {version} is not in the lock", hint=f"build it: xzctl images build {name}")
    layout = layout_dir(state_dir)
    tag = f"{name}-{version}"
    digest = layout_digest(layout, tag)
    if digest is None:
        raise NotFoundError(f"{layout}: no built image {tag}", hint=f"xzctl images build {name} --version {version}")
    if digest != release.digest:
        raise CheckFailedError(f"{tag}: the built image is {digest}, the lock pins {release.digest}")
    manifest_path = layout / "blobs" / "sha256" / digest.removeprefix("sha256:")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    blobs = [digest, manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    for blob in blobs:
        path = layout / "blobs" / "sha256" / blob.removeprefix("sha256:")
        if not path.is_file() or f"sha256:{sha256_file(path)}" != blob:
            raise CheckFailedError(f"{tag}: blob {blob} is missing or corrupt in {layout}")
    return digest
