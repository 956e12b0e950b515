"""`xzctl render node-config|region` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xzctl.cli import run
from xzctl.images import ImageRef, load_catalog
from xzctl.render.output import MARKER


def test_node_config_prints_both_documents_as_one_stream(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["render", "node-config", "gz-edge-01"]) == 0
    captured = capsys.readouterr()
    node, server = list(yaml.safe_load_all(captured.out))
    assert node["edge_node"]["id"] == "gz-edge-01"
    assert server["server"]["websocket"] == "wss://gz-edge-01.xiaozhi.example/xiaozhi/v1/"
    assert "--- # node.yaml" in captured.out and "--- # data/.config.yaml" in captured.out
    assert "2 warning(s); see: xzctl fleet validate" in captured.err
    # a catalog image is written as the node pulls it, by the lock's digest; the site's edge LLM as the spec says
    images = {name: svc["image"] for name, svc in node["edge_node"]["services"].items() if "image" in svc}
    catalog = load_catalog()
    for name in ("vad", "asr", "tts"):
        ref = ImageRef.parse(images[name])
        release = catalog.get(name).release(str(ref.tag))
        assert release is not None and ref.digest == release.digest, images[name]
    assert images["llm"] == "registry.xiaozhi.example/inference/edge-llm:1.0.0"


def test_node_config_out_writes_the_node_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gz-edge-01"
    assert run(["render", "node-config", "gz-edge-01", "--out", str(out)]) == 0
    assert f"wrote 2 file(s) to {out}" in capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        MARKER,
        "data/.config.yaml",
        "node.yaml",
    ]


def test_region_out_writes_every_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "shanghai"
    assert run(["render", "region", "shanghai", "--out", str(out)]) == 0
    assert f"wrote 4 file(s) to {out}" in capsys.readouterr().out
    for node in ("sh-edge-01", "sh-edge-02"):
        config = yaml.safe_load((out / node / "data/.config.yaml").read_text(encoding="utf-8"))
        assert config["server"]["websocket"] == f"wss://{node}.xiaozhi.example/xiaozhi/v1/"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["render", "node-config", "../../etc"], "edge node '../../etc' is not a DNS label"),
        (["render", "region", "../beijing", "--out", "OUT"], "region '../beijing' is not a DNS label"),
        (["render", "region", "beijing/..", "--out", "OUT"], "is not a DNS label"),
        (["render", "node-config", "bj-edge-99", "--out", "OUT"], "no edge node 'bj-edge-99' in the fleet"),
        (["render", "region", "mars", "--out", "OUT"], "no region 'mars' in the fleet (known: beijing, shanghai"),
        (["render", "region", "beijing"], "Missing option '--out'"),
    ],
)
def test_bad_names_are_exit_2_and_write_nothing(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = run([str(out) if a == "OUT" else a for a in args])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == []


def test_out_refuses_a_folder_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine\n", encoding="utf-8")
    assert run(["render", "region", "beijing", "--out", str(tmp_path)]) == 2
    assert "was not written by xzctl render" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_node_config_json_carries_the_same_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["render", "node-config", "bj-edge-02", "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["node"] == "bj-edge-02"
    assert set(data["files"]) == {"node.yaml", "data/.config.yaml"}
    assert yaml.safe_load(data["files"]["node.yaml"])["edge_node"]["id"] == "bj-edge-02"
