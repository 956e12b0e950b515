"""The image catalog shipped in inference_images/: its files, the lock, and reference resolution."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.fixtures.image_catalog import YANKED_ASR
from xzctl.errors import BadInputError, NotFoundError
from xzctl.images import Catalog, ImageRef, check_reference, load_catalog, verify_fleet
from xzctl.spec import Fleet
from xzctl.spec.models import Coordinator

ROOT = Path(__file__).resolve().parents[2] / "inference_images"
ASR = "registry.xiaozhi.example/inference/asr"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(ROOT)


def _with_services(fleet: Fleet, **update: object) -> Fleet:
    """The fleet with every edge node's services changed as `update` says."""
    services = fleet.node_profiles["edge-standard"].services.model_copy(update=update)
    regions = {
        name: region.model_copy(
            update={"edge_nodes": [n.model_copy(update={"services": services}) for n in region.edge_nodes]}
        )
        for name, region in fleet.regions.items()
    }
    return fleet.model_copy(update={"regions": regions})


def test_catalog_has_the_five_edge_images_with_their_models(catalog: Catalog) -> None:
    assert sorted(catalog.images) == ["asr", "edge-coordinator", "tts", "vad", "xiaozhi-server"]
    asr = catalog.get("asr").info
    assert (asr.model.name, asr.model.precision, asr.batch_size) == ("whisper-tiny.en-int8", "int8", 1)
    assert asr.streaming is not None
    assert (asr.streaming.chunk_samples, asr.streaming.overlap_samples) == (1600, 320)
    vad = catalog.get("vad").info
    assert (vad.model.format, vad.model.precision, vad.resources.gpu) == ("onnx", "int8", 0)
    assert "fallback" in catalog.get("tts").info.description
    assert "warm" in asr.readiness.condition


def test_the_coordinator_dockerfile_is_pinned_non_root_and_health_checked() -> None:
    text = (ROOT / "edge-coordinator" / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.M)
    assert base is not None
    assert ":" in base.group(1) and not base.group(1).endswith((":latest", ":server_latest"))
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0", "0:0")
    assert re.search(r"^HEALTHCHECK .*", text, re.M)


def test_every_release_is_pinned_by_a_well_formed_digest_a_build_produced(catalog: Catalog) -> None:
    releases = [r for image in catalog.images.values() for r in image.releases]
    assert len(releases) >= 5
    assert all(re.fullmatch(r"sha256:[a-f0-9]{64}", r.digest) for r in releases)
    assert len({r.digest for r in releases}) == len(releases)
    assert [f"{r.version}" for r in releases if r.built is None] == []
    # the coordinator's Dockerfile installs a package that does not exist: nothing of it is released
    assert catalog.get("edge-coordinator").releases == ()


def test_the_images_of_the_example_are_built_here_or_marked_external(catalog: Catalog, example_fleet: Fleet) -> None:
    report = verify_fleet(example_fleet, catalog)
    statuses = {f.service: (f.status, f.message) for f in report.findings}
    for service in ("xiaozhi_server", "vad", "asr", "tts"):
        image, release = catalog.resolve(next(f.image for f in report.findings if f.service == service))
        assert statuses[service][0] == "ok" and release.built is not None, (service, image.info.name)
    external = {service: message for service, (status, message) in statuses.items() if status == "external"}
    assert {"llm", "cache"} <= set(external) and all(m.startswith("external: ") for m in external.values())
    # the example runs no coordinator (no build here makes one): nothing it pins fails
    assert "coordinator" not in statuses
    assert report.errors == []


def test_a_coordinator_a_spec_sets_is_judged_like_any_image(catalog: Catalog, example_fleet: Fleet) -> None:
    image = "registry.xiaozhi.example/inference/edge-coordinator:1.0.0"
    report = verify_fleet(_with_services(example_fleet, coordinator=Coordinator(image=image)), catalog)
    # one error more than the example has: the coordinator's, no build here made it
    assert [f.service for f in report.errors] == [
        *(f.service for f in verify_fleet(example_fleet, catalog).errors),
        "coordinator",
    ]
    coordinator = report.errors[-1]
    assert "not a released version" in coordinator.message
    assert "no build here produced any edge-coordinator image" in coordinator.fix
    assert len(coordinator.places) == len(example_fleet.edge_nodes())


def test_an_image_neither_built_nor_marked_external_is_an_error(catalog: Catalog) -> None:
    with pytest.raises(BadInputError, match="not built here and the lock does not mark it external"):
        check_reference(catalog, "docker.io/someone/llm:1.0", "llm", production=False)
    assert check_reference(catalog, "redis:7.2", "cache", production=False).startswith("external: Docker Official")


def test_a_release_without_a_build_record_is_refused(catalog_copy: Path) -> None:
    lock_path = catalog_copy / "catalog.lock.yaml"
    lock = yaml.safe_load(lock_path.read_text())
    lock["images"]["asr"].append({"version": "7.0.0", "digest": "sha256:" + "7" * 64, "released": "2026-09-02"})
    lock_path.write_text(yaml.safe_dump(lock))
    with pytest.raises(BadInputError, match="no build here produced its digest"):
        check_reference(load_catalog(catalog_copy), f"{ASR}:7.0.0", "asr", production=False)


def test_by_digest_pins_released_tags_and_leaves_the_rest(catalog: Catalog) -> None:
    release = catalog.get("asr").release("1.3.0")
    assert release is not None
    assert catalog.by_digest(f"{ASR}:1.3.0") == f"{ASR}:1.3.0@{release.digest}"
    pinned = f"{ASR}:1.3.0@{release.digest}"
    for ref in (pinned, "redis:7.2", f"{ASR}:3.0.0"):  # already pinned, external, no such release
        assert catalog.by_digest(ref) == ref


def test_resolve_accepts_tag_digest_and_both(catalog: Catalog) -> None:
    image = catalog.get("asr")
    release = image.release("1.3.0")
    assert release is not None
    assert catalog.resolve(f"{ASR}:1.3.0")[1] == release
    assert catalog.resolve(f"{ASR}@{release.digest}")[1] == release
    assert catalog.resolve(image.pinned(release))[1] == release


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        (f"{ASR}:{YANKED_ASR}", "yanked: WER regression"),
        (f"{ASR}:3.0.0", "not a released version"),
        (f"{ASR}:1.3.0@sha256:{'0' * 64}", "does not match the lock"),
        (f"{ASR}:1.3.0@sha256:abc", "not sha256:<64 hex digits>"),
        ("docker.io/someone/asr:1.3.0", "not a catalog image"),
    ],
)
def test_resolve_refuses_with_the_reason(yanked_catalog: Path, ref: str, needle: str) -> None:
    with pytest.raises(BadInputError) as info:
        load_catalog(yanked_catalog).resolve(ref)
    assert needle in info.value.message


def test_yanked_version_hint_names_the_newest_release(yanked_catalog: Path) -> None:
    catalog = load_catalog(yanked_catalog)
    latest = catalog.get("asr").latest()
    assert latest is not None and latest.version != YANKED_ASR
    with pytest.raises(BadInputError) as info:
        catalog.resolve(f"{ASR}:{YANKED_ASR}")
    assert info.value.hint is not None and f"{ASR}:{latest.version}@sha256:" in info.value.hint


def test_image_ref_parses_registry_ports() -> None:
    ref = ImageRef.parse("registry.local:5000/inference/asr:1.2.0")
    assert (ref.repository, ref.tag, ref.digest) == ("registry.local:5000/inference/asr", "1.2.0", None)
    assert ImageRef.parse("redis").tag is None


def test_production_requires_digests_and_matching_models(catalog: Catalog) -> None:
    with pytest.raises(BadInputError, match="not pinned by digest"):
        check_reference(catalog, f"{ASR}:2.0.0", "asr", production=True)
    release = catalog.get("asr").release("2.0.0")
    assert release is not None
    pinned = catalog.get("asr").pinned(release)
    assert "asr 2.0.0" in check_reference(catalog, pinned, "asr", production=True, model="whisper-tiny.en-int8")
    with pytest.raises(BadInputError, match=r"serves 'whisper-tiny\.en-int8'"):
        check_reference(catalog, pinned, "asr", production=True, model="whisper-base")
    with pytest.raises(BadInputError, match="is the asr image, not a tts image"):
        check_reference(catalog, pinned, "tts", production=False)


def test_verify_flags_the_upstream_latest_tag(catalog: Catalog, example_fleet: Fleet) -> None:
    upstream = "ghcr.io/xinnan-tech/xiaozhi-esp32-server:server_latest"
    spec_server = example_fleet.node_profiles["edge-standard"].services.xiaozhi_server
    report = verify_fleet(
        _with_services(example_fleet, xiaozhi_server=spec_server.model_copy(update={"image": upstream})), catalog
    )
    by_service = {f.service: f for f in report.findings}
    server = by_service["xiaozhi_server"]
    assert server.status == "error" and "server_latest" in server.image
    assert "registry.xiaozhi.example/inference/xiaozhi-server:0.9.6@sha256:" in server.fix
    assert len(server.places) == len(example_fleet.edge_nodes())
    assert by_service["asr"].status == "ok" and by_service["cache"].status == "external"
    assert [f.service for f in report.errors] == ["xiaozhi_server"]


def test_a_lock_pinning_an_unknown_image_is_refused(catalog_copy: Path) -> None:
    root = catalog_copy
    lock = yaml.safe_load((root / "catalog.lock.yaml").read_text())
    lock["images"]["ghost"] = lock["images"]["vad"]
    (root / "catalog.lock.yaml").write_text(yaml.safe_dump(lock))
    with pytest.raises(BadInputError, match="lock pins ghost but no such image folder"):
        load_catalog(root)


def test_an_image_yaml_with_a_missing_field_names_the_file(catalog_copy: Path) -> None:
    root = catalog_copy
    meta = yaml.safe_load((root / "tts" / "image.yaml").read_text())
    del meta["readiness"]
    (root / "tts" / "image.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(BadInputError) as info:
        load_catalog(root)
    assert "tts/image.yaml: readiness" in info.value.message


def test_unknown_image_name_lists_the_known_ones(catalog: Catalog) -> None:
    with pytest.raises(NotFoundError) as info:
        catalog.get("whisper")
    assert info.value.hint is not None and "asr" in info.value.hint
