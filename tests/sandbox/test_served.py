"""What a capacity profile says served the turns: image versions by digest, never the sandbox's processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.xiaozhi import xiaozhi_source
from xzctl.images.catalog import Catalog, load_catalog
from xzctl.sandbox.served import server_image, service_image

ASR = "registry.xiaozhi.example/inference/asr"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _released(catalog: Catalog, name: str) -> str:
    image = catalog.get(name)
    release = image.release(image.info.version)
    assert release is not None
    return f"{image.info.repository}:{release.version}@{release.digest}"


def _layout(tmp_path: Path, tag: str, digest: str) -> Path:
    entry = {"digest": digest, "annotations": {"org.opencontainers.image.ref.name": tag}}
    (tmp_path / "index.json").write_text(json.dumps({"manifests": [entry]}))
    return tmp_path


@pytest.mark.parametrize(
    ("label", "drifted", "expected"),
    [
        # the package of a tree whose inputs are the release's: that release, by its locked digest
        (f"{ASR}:2.2.0", {}, "released"),
        # the same package after its inputs moved: not the release, and why
        (
            f"{ASR}:2.2.0",
            {"asr": "inputs changed since the release: a.py changed"},
            f"{ASR}:2.2.0 (the tree's package: inputs changed since the release: a.py changed)",
        ),
        # a previous release's tag on the tree's package (a canary variant): the code is not that release
        (f"{ASR}:1.4.1", {}, f"{ASR}:1.4.1 (the tree's package, not that release)"),
        (f"{ASR}:9.9.9", {}, f"{ASR}:9.9.9 (the tree's package, not that release)"),
        ("elsewhere/asr:2.2.0", {}, "elsewhere/asr:2.2.0 (the tree's package, not that release)"),
    ],
)
def test_a_service_run_from_the_package_is_its_release_only_when_the_inputs_are(
    catalog: Catalog, label: str, drifted: dict[str, str], expected: str
) -> None:
    got = service_image("asr", label, "package", catalog, drifted)
    assert got == (_released(catalog, "asr") if expected == "released" else expected)


def test_a_service_run_from_its_built_image_is_named_by_that_image_digest(catalog: Catalog, tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    layout = _layout(tmp_path, "asr-1.4.1", digest)
    got = service_image("asr", f"{ASR}:1.4.1", f"image oci:{layout}:asr-1.4.1", catalog, {})
    assert got == f"{ASR}:1.4.1@{digest}"
    assert service_image("asr", f"{ASR}:1.4.1", f"image oci:{layout}:asr-1.4.0", catalog, {}).endswith(
        "(built image without a digest)"
    )


def test_the_upstream_server_is_its_catalog_release_only_for_the_pinned_tree(catalog: Catalog, tmp_path: Path) -> None:
    source = xiaozhi_source()
    assert server_image(source, catalog, {}) == _released(catalog, "xiaozhi-server")
    assert server_image(source, catalog, {"xiaozhi-server": "moved"}).endswith("not a release)")
    other = tmp_path / "server"
    other.mkdir()
    (other / "app.py").write_text("print('not upstream')\n")
    (other / "config.yaml").write_text("server: {}\n")
    got = server_image(other, catalog, {})
    assert got.startswith(f"upstream source {other} (tree sha256:") and got.endswith("not a release)")
