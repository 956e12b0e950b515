"""Writing rendered folders: all or nothing, never outside the folder, never over someone else's files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from xzctl.errors import BadInputError
from xzctl.render import output
from xzctl.render.output import FAULT_ENV, MARKER, STEPS, _recover, write_tree


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_exactly_the_files_and_a_marker(tmp_path: Path) -> None:
    out = tmp_path / "out"
    written = write_tree(out, {"a/node.yaml": "x: 1\n", "a/data/.config.yaml": "y: 2\n"}, what="test")
    assert sorted(written) == [out / "a/data/.config.yaml", out / "a/node.yaml"]
    tree = _tree(out)
    assert tree.pop(MARKER) and json.loads(_tree(out)[MARKER]) == {
        "rendered": "test",
        "files": ["a/data/.config.yaml", "a/node.yaml"],
    }
    assert tree == {"a/data/.config.yaml": "y: 2\n", "a/node.yaml": "x: 1\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_rerender_replaces_the_folder_and_drops_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, {"old-node/node.yaml": "old\n"}, what="test")
    write_tree(out, {"new-node/node.yaml": "new\n"}, what="test")
    assert set(_tree(out)) == {MARKER, "new-node/node.yaml"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_empty_existing_folder_is_used(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_tree(out, {"n/node.yaml": "x\n"}, what="test")
    assert _tree(out)["n/node.yaml"] == "x\n"


def test_a_folder_xzctl_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "precious.txt").write_text("keep me\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="not empty and was not written by xzctl render"):
        write_tree(home, {"n/node.yaml": "x\n"}, what="test")
    assert _tree(home) == {"precious.txt": "keep me\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


@pytest.mark.parametrize(
    "bad", ["../escape.yaml", "/etc/passwd", "a/../../b", "a//b/..", "a/./b", "", "a\\..\\b", "a b"]
)
def test_paths_outside_the_folder_are_refused_before_writing(tmp_path: Path, bad: str) -> None:
    with pytest.raises(BadInputError, match="not a plain relative path"):
        write_tree(tmp_path / "out", {"ok/node.yaml": "x\n", bad: "evil\n"}, what="test")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_midway_leaves_the_previous_folder_and_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_tree(out, {"n/node.yaml": "previous\n"}, what="test")
    before = _tree(out)
    real_write = Path.write_text
    calls = {"n": 0}

    def flaky(self: Path, data: str, *args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_write(self, data, encoding="utf-8")

    monkeypatch.setattr(Path, "write_text", flaky)
    with pytest.raises(BadInputError, match=r"cannot write .*No space left on device"):
        write_tree(out, {f"n{i}/node.yaml": "new\n" for i in range(5)}, what="test")
    monkeypatch.undo()
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_missing_parents_are_made_and_file_targets_are_clear_errors(tmp_path: Path) -> None:
    write_tree(tmp_path / "no" / "such" / "out", {"n/node.yaml": "x\n"}, what="test")  # mkdir -p, as the README runs
    assert (tmp_path / "no" / "such" / "out" / "n" / "node.yaml").read_text(encoding="utf-8") == "x\n"
    shutil.rmtree(tmp_path / "no")
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(BadInputError, match="is not a folder"):
        write_tree(target, {"n/node.yaml": "x\n"}, what="test")
    with pytest.raises(BadInputError, match=r"file is not a folder"):
        write_tree(target / "out", {"n/node.yaml": "x\n"}, what="test")
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(BadInputError, match="is a symlink"):
        write_tree(link, {"n/node.yaml": "x\n"}, what="test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "link"]


OLD = {"old-node/node.yaml": "old\n", "shared.yaml": "old\n"}
NEW = {f"new-{i}/node.yaml": f"new {i}\n" for i in range(20)} | {"shared.yaml": "new\n"}
# A child process that renders NEW over `out` and, via the fault hook, SIGKILLs itself at one step.
# It loads output.py alone: xzctl.render's templates and spec models would triple the child's start-up.
CHILD = """
import importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("xzctl.render.output", sys.argv[4])
output = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(output)
if sys.argv[3] == "fallback":
    output._exchange = lambda a, b: False
output.write_tree(Path(sys.argv[1]), json.loads(sys.argv[2]), what="test")
"""


def _render_killed_at(out: Path, step: str, mode: str) -> int:
    env = {**os.environ, FAULT_ENV: step}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(out), json.dumps(NEW), mode, output.__file__],
        env=env,
        timeout=60,
        check=False,
    )
    return child.returncode


@pytest.mark.parametrize("mode", ["exchange", "fallback"])
@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_any_step_leaves_the_old_or_the_new_render(tmp_path: Path, step: str, mode: str) -> None:
    out = tmp_path / "out"
    write_tree(out, OLD, what="test")
    code = _render_killed_at(out, step, mode)
    if step == "old-parked" and mode == "exchange":
        assert code == 0  # the exchange never parks the old folder: the step does not happen
    else:
        assert code == -signal.SIGKILL
    if step == "old-parked" and mode == "fallback":
        # The one instant of the fallback without a folder: the parked old render is complete and the
        # next run puts it back before anything else.
        (parked,) = tmp_path.glob(".out.xzctl-old-*/previous")
        assert _tree(parked) == _tree_of(OLD)
        _recover(out, tmp_path)
        assert _tree(out) == _tree_of(OLD)
    else:
        assert _tree(out) in (_tree_of(OLD), _tree_of(NEW))
        swapped = code == 0 or STEPS.index(step) >= STEPS.index("swapped")
        assert _tree(out) == _tree_of(NEW if swapped else OLD)
    # The next render cleans whatever the killed one left and writes the new folder.
    write_tree(out, NEW, what="test")
    assert _tree(out) == _tree_of(NEW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _tree_of(files: dict[str, str]) -> dict[str, str]:
    manifest = {"rendered": "test", "files": sorted(files)}
    return {**files, MARKER: json.dumps(manifest, indent=2) + "\n"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_is_bad_input_with_the_path(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        with pytest.raises(BadInputError, match=r"cannot write .*ro.*Permission denied") as err:
            write_tree(parent / "out", {"n/node.yaml": "x\n"}, what="test")
        assert err.value.exit_code == 2
    finally:
        parent.chmod(0o755)


def test_a_refused_temporary_folder_is_bad_input_with_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, dir: str, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", dir)

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    with pytest.raises(BadInputError, match=f"cannot write {tmp_path}: Permission denied") as err:
        write_tree(tmp_path / "out", {"n/node.yaml": "x\n"}, what="test")
    assert err.value.exit_code == 2


def test_an_unwritable_file_is_bad_input_with_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(self: Path, *args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", denied)
    with pytest.raises(BadInputError, match=r"cannot write .*node.yaml: Permission denied") as err:
        write_tree(tmp_path / "out", {"n/node.yaml": "x\n"}, what="test")
    assert err.value.exit_code == 2
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
