"""Write rendered files as one folder, all or nothing, whatever the moment of a crash.

Everything is rendered in memory first; the files go to a hidden sibling folder, which then trades
places with the target in ONE atomic step (Linux `renameat2(RENAME_EXCHANGE)`), so a SIGKILL at any
moment leaves the complete old folder or the complete new one. Where the exchange is unsupported,
the old folder is parked beside the target for the instant between two renames and put back by the
next run. Leftovers of an interrupted run (hidden `.DIR.xzctl-*` siblings) are removed by the next
render of the same folder. A folder xzctl did not write is never replaced (it could be someone's home).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from xzctl.errors import BadInputError

MARKER = ".xzctl-render.json"
FAULT_ENV = "XZCTL_FAULT_RENDER_KILL_AT"  # tests only: SIGKILL this process at the named step
STEPS = ("temp-created", "files-written", "marker-written", "old-parked", "swapped", "done")
_SAFE_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


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
    try:
        parent.mkdir(parents=True, exist_ok=True)  # like `mkdir -p`: `--out ./out/beijing` works on a fresh clone
    except (FileExistsError, NotADirectoryError):
        raise BadInputError(f"--out {out_dir}: {parent} is not a folder") from None
    except OSError as exc:
        raise BadInputError(f"--out {out_dir}: cannot create {parent}: {exc.strerror}") from exc
    if out_dir.exists():
        if not out_dir.is_dir():
            raise BadInputError(f"--out {out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
            raise BadInputError(
                f"--out {out_dir} is not empty and was not written by xzctl render",
                hint="give a new or empty folder; xzctl only replaces folders it rendered",
            )
    return parent


def _step(name: str) -> None:
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the system cannot."""
    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if rename is None:
        return False
    if rename(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _recover(out_dir: Path, parent: Path) -> None:
    """Undo what an interrupted render left: put a parked old folder back, remove temporary ones."""
    for leftover in sorted(parent.glob(f".{out_dir.name}.xzctl-*")):
        previous = leftover / "previous"
        if not out_dir.exists() and (previous / MARKER).is_file():
            os.replace(previous, out_dir)  # killed between the two renames of the fallback swap
        shutil.rmtree(leftover)


def write_tree(out_dir: Path, files: Mapping[str, str], *, what: str) -> list[Path]:
    """Replace `out_dir` with exactly `files` (relative path -> text); return the paths written."""
    checked = {check_relative(p): text for p, text in files.items()}
    tmp: Path | None = None
    try:
        parent = _prepare_target(out_dir)
        _recover(out_dir, parent)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out_dir.name}.xzctl-new-"))
        _step("temp-created")
        for rel, text in checked.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        _step("files-written")
        manifest = {"rendered": what, "files": sorted(str(p) for p in checked)}
        (tmp / MARKER).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the rendered folder is ordinary config
        _step("marker-written")
        _swap(tmp, out_dir, parent)
        _step("done")
    except BaseException as exc:  # interrupted too: never leave the half-written temporary folder
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            where = exc.filename or out_dir
            raise BadInputError(
                f"cannot write {where}: {exc.strerror or exc}", hint="check permissions and free space of --out"
            ) from exc
        raise
    return [out_dir / p for p in checked]


def _swap(new: Path, out_dir: Path, parent: Path) -> None:
    """Put `new` in place of `out_dir`; on return `new` holds nothing that is needed."""
    if not out_dir.exists():
        os.replace(new, out_dir)
        _step("swapped")
        return
    if _exchange(new, out_dir):  # `new` now holds the old render
        _step("swapped")
        shutil.rmtree(new, ignore_errors=True)  # a leftover is removed by the next render
        return
    parking = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out_dir.name}.xzctl-old-"))
    os.replace(out_dir, parking / "previous")
    _step("old-parked")
    try:
        os.replace(new, out_dir)
    except OSError:
        os.replace(parking / "previous", out_dir)
        raise
    _step("swapped")
    shutil.rmtree(parking, ignore_errors=True)
