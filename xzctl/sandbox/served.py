"""Which image versions serve the real node's turns: what a capacity profile records beside its curve.

A service is named by the catalog release it runs, `repository:version@digest`: the built image's own digest, or,
run from the package, the release whose recorded inputs are exactly the tree's (the code that ran is that
release's). Code that is no release says so instead of borrowing a release's digest. The upstream server is its
catalog image when the source given is the tree that image pins; the LLM is a stand-in, no image.
"""

from __future__ import annotations

from pathlib import Path

from xzctl.images.build import layout_digest
from xzctl.images.catalog import Catalog
from xzctl.images.inputs import load_build_spec, source_tree
from xzctl.images.provenance import input_drift
from xzctl.images.run import IMAGE_SOURCE, RunningService
from xzctl.sandbox.xiaozhi import find_source

LLM_STANDIN = "sandbox/llm-stand-in (no image: the cloud LLM cannot run here)"


def service_image(name: str, label: str, source: str, catalog: Catalog, drifted: dict[str, str]) -> str:
    """`repository:version@digest` of what a service of catalog image `name` runs, or why it is no release.
    `label`: the image its metrics name (repository:version); `source`: how it runs (RunningService.source)."""
    image = catalog.get(name)
    if source.startswith(IMAGE_SOURCE):
        layout, _, tag = source.removeprefix(IMAGE_SOURCE).rpartition(":")
        digest = layout_digest(Path(layout), tag)
        return f"{label}@{digest}" if digest else f"{label} (built image without a digest)"
    tag = label.rpartition(":")[2]
    release = image.release(tag) if label.startswith(image.info.repository + ":") else None
    if release is None or tag != image.info.version:
        return f"{label} (the tree's package, not that release)"
    if name in drifted:
        return f"{label} (the tree's package: {drifted[name]})"
    return image.pinned(release)


def server_image(source: str | Path | None, catalog: Catalog, drifted: dict[str, str]) -> str:
    """The upstream server's catalog release when `source` is the tree its build pins, else the tree's hash."""
    root, _ = find_source(source)
    _, tree = source_tree(root)
    image = catalog.get("xiaozhi-server")
    pinned = load_build_spec(catalog.root / "xiaozhi-server").source
    release = image.release(image.info.version)
    if pinned is None or pinned.sha256 != tree or release is None or "xiaozhi-server" in drifted:
        return f"upstream source {root} (tree sha256:{tree}, not a release)"
    return image.pinned(release)


def served_images(
    asr: RunningService, tts: RunningService, source: str | Path | None, catalog: Catalog
) -> dict[str, str]:
    """Service -> image of the node's stable turn path: the server, its ASR and TTS replicas and the LLM."""
    drifted = {d.image: d.problem for d in input_drift(catalog)}
    return {
        "xiaozhi-server": server_image(source, catalog, drifted),
        "asr": service_image("asr", asr.image, asr.source, catalog, drifted),
        "tts": service_image("tts", tts.image, tts.source, catalog, drifted),
        "llm": LLM_STANDIN,
    }
