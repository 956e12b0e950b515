"""Write rendered files as one folder, all or nothing.

Everything is rendered in memory first; the files go to a temporary folder beside the target and the
folder is renamed into place. A crash or an error leaves either the old folder or the new one, never
a mix. A folder xzctl did not write is never replaced (it could be someone's home directory).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from xzctl.errors import BadInputError

MARKER = ".xzctl-render.json"
_SAFE_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


def check_relative(path: str) -> PurePosixPath:
    """A relative path that stays inside its folder: no '..', no absolute path, no odd characters."""
    rel = PurePosixPath(path)
    parts = rel.parts
    if (
        str(rel) != path
        or rel.is_absolute()
        or not parts
        or any(p in (".", "..") or not _SAFE_PART.match(p) for p in parts)
    ):
        raise BadInputError(f"refusing to write {path!r}: not a plain relative path inside the output folder")
    return rel


def _prepare_target(out_dir: Path) -> Path:
    if out_dir.is_symlink():
        raise BadInputError(f"--out {out_dir} is a symlink", hint="give the real folder path")
    parent = out_dir.absolute().parent
    if not parent.is_dir():
        raise BadInputError(f"--out {out_dir}: folder {parent} does not exist", hint="create it first")
    if out_dir.exists():
        if not out_dir.is_dir():
            raise BadInputError(f"--out {out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
            raise BadInputError(
                f"--out {out_dir} is not empty and was not written by xzctl render",
                hint="give a new or empty folder; xzctl only replaces folders it rendered",
            )
    return parent


def write_tree(out_dir: Path, files: Mapping[str, str], *, what: str) -> list[Path]:
    """Replace `out_dir` with exactly `files` (relative path -> text); return the paths written."""
    checked = {check_relative(p): text for p, text in files.items()}
    parent = _prepare_target(out_dir)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out_dir.name}.xzctl-new-"))
    old: Path | None = None
    try:
        for rel, text in checked.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        manifest = {"rendered": what, "files": sorted(str(p) for p in checked)}
        (tmp / MARKER).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the rendered folder is ordinary config
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out_dir.name}.xzctl-old-"))
            os.replace(out_dir, old / "previous")
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if old is not None:
                os.replace(old / "previous", out_dir)
            raise
    except BaseException as exc:  # interrupted too: never leave the half-written temporary folder
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BadInputError(f"cannot write {out_dir}: {exc.strerror or exc}") from exc
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return [out_dir / p for p in checked]
