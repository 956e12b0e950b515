"""A released version's inputs: recorded at build, recomputed without building, and any change named (the CI gate
that a released version is never silently rebuilt from other inputs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.fixtures.image_catalog import CATALOG
from xzctl.images import load_catalog
from xzctl.images.provenance import InputDrift, input_drift, release_inputs

SERVICE_IMAGES = ("asr", "tts", "vad")  # the images built from the service package


def test_every_image_folder_names_a_release_built_from_the_tree_as_it_is() -> None:
    """Fails when a file that goes into an image changed after its version was released: raise the version in
    image.yaml and build it (`xzctl images build NAME`), which records the new digest and inputs in the lock."""
    drift = input_drift(load_catalog(CATALOG))
    assert drift == [], "\n".join(f"{d.image} {d.version}: {d.problem}; fix: {d.fix}" for d in drift)


def test_the_inputs_are_build_yaml_and_the_files_the_build_stages() -> None:
    inputs = release_inputs(CATALOG / "vad")
    assert {"vad/build.yaml", "xz_inference/vad.py", "xz_inference/server.py", "xzctl/metrics/contract.py"} <= set(
        inputs
    )
    assert not [k for k in inputs if "__pycache__" in k or k.startswith(("asr/", "tts/"))]


def _edit(path: str, text: str = "# changed\n") -> Callable[[Path], None]:
    def change(root: Path) -> None:
        with (root / path).open("a", encoding="utf-8") as f:
            f.write(text)

    return change


def _bump(image: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        meta = root / image / "image.yaml"
        meta.write_text(
            meta.read_text().replace(f"version: {load_catalog(root).get(image).info.version}", "version: 9.9.9")
        )

    return change


def _forget_inputs(image: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        lock_path = root / "catalog.lock.yaml"
        lock = yaml.safe_load(lock_path.read_text())
        version = load_catalog(root).get(image).info.version
        for release in lock["images"][image]:
            if release["version"] == version:
                del release["built"]["inputs"]
        lock_path.write_text(yaml.safe_dump(lock))

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # the shared service package is in every service image
        (_edit("xz_inference/asr.py"), {name: "xz_inference/asr.py changed" for name in SERVICE_IMAGES}),
        (_edit("vad/build.yaml"), {"vad": "vad/build.yaml changed"}),
        (_edit("xz_inference/new_module.py"), {name: "xz_inference/new_module.py added" for name in SERVICE_IMAGES}),
        (_bump("tts"), {"tts": "image.yaml names a version the lock has not released"}),
        (_forget_inputs("asr"), {"asr": "no record of the inputs"}),
    ],
    ids=["package-file", "build-yaml", "new-file", "unreleased-version", "no-inputs-record"],
)
def test_a_change_names_the_image_the_version_and_what_changed(
    catalog_copy: Path, change: Callable[[Path], None], expected: dict[str, str]
) -> None:
    change(catalog_copy)
    catalog = load_catalog(catalog_copy)
    drift = {d.image: d for d in input_drift(catalog)}
    assert sorted(drift) == sorted(expected)
    for name, needle in expected.items():
        found: InputDrift = drift[name]
        assert found.version == catalog.get(name).info.version
        assert needle in found.problem and f"xzctl images build {name}" in found.fix


def test_a_removed_package_file_is_named(catalog_copy: Path) -> None:
    (catalog_copy / "xz_inference" / "loadgen.py").unlink()
    problems = {d.image: d.problem for d in input_drift(load_catalog(catalog_copy))}
    assert all("xz_inference/loadgen.py removed" in problems[name] for name in SERVICE_IMAGES)
