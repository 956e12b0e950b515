"""`xzctl images list|show|verify` as an operator and a CI job run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.golden import assert_golden
from xzctl.cli import run
from xzctl.spec import bundled_example_path

GOLDEN = Path(__file__).parent / "golden"
UPSTREAM = "ghcr.io/xinnan-tech/xiaozhi-esp32-server:server_latest"
CATALOG_SERVER = "registry.xiaozhi.example/inference/xiaozhi-server:0.9.6"


def test_list_json_matches_golden(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["images", "list", "-o", "json"]) == 0
    out = capsys.readouterr().out
    assert [row["name"] for row in json.loads(out)] == ["asr", "edge-coordinator", "tts", "vad", "xiaozhi-server"]
    assert_golden(GOLDEN / "images-list.json", out)


def test_show_lists_releases_with_pinned_references(yanked_catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["images", "show", "asr", "--catalog", str(yanked_catalog), "-o", "yaml"]) == 0
    out = capsys.readouterr().out
    assert "chunk_samples: 1600" in out and "overlap_samples: 320" in out
    assert "reference: registry.xiaozhi.example/inference/asr:1.3.0@sha256:" in out
    assert "yanked: WER regression" in out


def test_show_unknown_image_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["images", "show", "whisper"]) == 2
    assert "no image 'whisper' in the catalog" in capsys.readouterr().err


def _example_with_upstream_server(tmp_path: Path) -> Path:
    """The bundled example, but running the upstream image tag straight from ghcr.io."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(bundled_example_path().read_text().replace(CATALOG_SERVER, UPSTREAM))
    return fleet


def test_verify_fails_on_an_upstream_tag_and_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["images", "verify", "--fleet", str(_example_with_upstream_server(tmp_path)), "-o", "json"]) == 1
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["valid"] is False
    errors = [i for i in data["images"] if i["status"] == "error"]
    assert [e["service"] for e in errors] == ["xiaozhi_server"]
    # A verdict: the document says which and why, on stdout; nothing is an error line.
    assert "regions.beijing.edge_nodes[0].services.xiaozhi_server.image" in errors[0]["places"]
    assert f"use {CATALOG_SERVER}@sha256:" in errors[0]["fix"]
    assert captured.err == ""


def test_verify_passes_on_the_bundled_example_which_pins_only_built_or_external_images(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert CATALOG_SERVER in bundled_example_path().read_text()
    code = run(["images", "verify", "--fleet", str(bundled_example_path()), "-o", "json"])
    data = json.loads(capsys.readouterr().out)
    by_status: dict[str, set[str]] = {}
    for image in data["images"]:
        by_status.setdefault(image["status"], set()).add(image["service"])
    # the example runs no coordinator: no image of it to verify
    assert "coordinator" not in {image["service"] for image in data["images"]}
    assert (code, data["valid"], by_status.get("error", set())) == (0, True, set())
    assert {"xiaozhi_server", "vad", "asr", "tts"} <= by_status["ok"] and {"llm", "cache"} <= by_status["external"]


def test_verify_inputs_passes_on_the_tree_and_names_a_changed_file(
    catalog_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["images", "verify", "--inputs", "--catalog", str(catalog_copy)]) == 0
    assert "ok" in capsys.readouterr().out
    with (catalog_copy / "xz_inference" / "tts.py").open("a") as f:
        f.write("# changed\n")
    assert run(["images", "verify", "--inputs", "--catalog", str(catalog_copy), "-o", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["valid"] is False
    assert {d["image"] for d in data["images"]} == {"asr", "tts", "vad"}
    assert all("xz_inference/tts.py changed" in d["problem"] for d in data["images"])


def test_verify_reports_a_production_spec_instead_of_stopping_at_its_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Production requires digests: `fleet validate` refuses tags, and `images verify` says which and how to pin them.
    spec = tmp_path / "fleet.yaml"
    spec.write_text(bundled_example_path().read_text().replace("environment: staging", "environment: production"))
    assert run(["fleet", "validate", "--fleet", str(spec)]) == 2
    capsys.readouterr()
    assert run(["images", "verify", "--fleet", str(spec), "-o", "json"]) == 1
    errors = [i for i in json.loads(capsys.readouterr().out)["images"] if i["status"] == "error"]
    assert len(errors) == 10 and all("not pinned by digest" in e["message"] and e["fix"] for e in errors)


def test_verify_built_names_the_missing_build_and_how_to_make_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["images", "verify", "--built", "vad", "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no built image vad-" in err and "xzctl images build vad" in err


def test_build_refuses_a_version_that_is_not_semver(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["images", "build", "vad", "--version", "latest", "--state-dir", str(tmp_path)]) == 2
    assert "not a semantic version" in capsys.readouterr().err
