"""`xzctl images build xiaozhi-server`: the upstream server built from its pinned source (a tree whose hash differs
is refused, fast), and one real build whose server answers its health GET on loopback with a node's rendered
override."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import requests
import yaml

from tests.fixtures.image_catalog import CATALOG
from xzctl.errors import BadInputError
from xzctl.images import load_catalog
from xzctl.images.build import build_image, verify_built
from xzctl.images.inputs import UpstreamSource, load_build_spec, source_tree
from xzctl.images.provenance import release_inputs
from xzctl.images.run import start_service, stop_service, wait_ready
from xzctl.render import render_node_documents
from xzctl.spec import Fleet

NAME = "xiaozhi-server"


def _pinned_source() -> UpstreamSource:
    source = load_build_spec(CATALOG / NAME).source
    assert source is not None
    return source


def test_the_pinned_tree_hash_is_the_reference_source_0_9_6(upstream_server_source: Path) -> None:
    pinned = _pinned_source()
    assert pinned.version == "0.9.6" and source_tree(upstream_server_source)[1] == pinned.sha256


def test_a_changed_source_tree_is_refused_before_anything_is_built(
    upstream_server_source: Path, catalog_copy: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "server"
    shutil.copytree(upstream_server_source, changed)
    shutil.copy2(upstream_server_source.parent / "config.yaml", changed / "config.yaml")
    (changed / "app.py").write_text((changed / "app.py").read_text() + "\n# patched\n")
    with pytest.raises(BadInputError, match=r"is not xinnan-tech/xiaozhi-esp32-server 0\.9\.6: tree hash"):
        build_image(NAME, state_dir=tmp_path / "state", catalog_dir=catalog_copy, source=changed, lock=False)
    with pytest.raises(BadInputError, match="from its source: pass --source DIR"):
        build_image(NAME, state_dir=tmp_path / "state", catalog_dir=catalog_copy, lock=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.images
@pytest.mark.timeout(3600)
@pytest.mark.usefixtures("build_tools")
def test_the_upstream_server_builds_and_answers_its_health_get(
    upstream_server_source: Path, catalog_copy: Path, tmp_path: Path, example_fleet: Fleet
) -> None:
    state = tmp_path / "state"
    built = build_image(NAME, state_dir=state, version="9.0.0", catalog_dir=catalog_copy, source=upstream_server_source)
    assert built.locked and built.digest.startswith("sha256:")
    assert verify_built(NAME, "9.0.0", state_dir=state, catalog_dir=catalog_copy) == built.digest
    catalog = load_catalog(catalog_copy)
    release = catalog.get(NAME).release("9.0.0")
    assert release is not None and release.built is not None
    assert release.built.inputs == release_inputs(catalog_copy / NAME)
    assert "ffmpeg" in release.built.debian and not [w for w in release.built.wheels if w["name"] == "torch"]

    # the server of a real node's rendered override, on loopback ports of its own
    ws, http = _free_port(), _free_port()
    override = yaml.safe_load(render_node_documents(example_fleet, example_fleet.node("bj-edge-01")).server_config)
    override["server"] |= {"ip": "127.0.0.1", "port": ws, "http_port": http}
    data = tmp_path / "data"
    data.mkdir()
    (data / ".config.yaml").write_text(yaml.safe_dump(override, allow_unicode=True))
    data.chmod(0o777)  # the image user (uid 10001) writes its runtime files beside the override
    info = catalog.get(NAME).info
    service = start_service(
        NAME,
        port=ws,
        state_dir=state,
        log_dir=tmp_path / "logs",
        version="9.0.0",
        catalog_dir=catalog_copy,
        mounts={f"{_pinned_source().path}/data": data},
    )
    try:
        assert service.source.startswith("image ")
        wait_ready(service, float(info.readiness.timeout_seconds) * 5)
        answer = requests.get(f"{service.url}{info.readiness.path}", timeout=10)
        assert answer.status_code == 200 and "Server is running" in answer.text
    finally:
        stop_service(service)
