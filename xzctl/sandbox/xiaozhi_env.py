"""The upstream xiaozhi server's Python environment for the sandbox: a virtualenv built once into a cache outside the
clone, from the same hash-pinned wheel list the xiaozhi-server image installs (inference_images/xiaozhi-server/
build.yaml), with pip --require-hashes --no-deps --no-index. The venv's name carries a hash of that list and of
this Python, so a changed pin builds a new one and a present one costs a stat. Built into a temporary directory
and renamed, so a crashed build is never taken for a finished one.

Run: python -m xzctl.sandbox.xiaozhi_env   (scripts/test.sh does, once per machine)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from xzctl.errors import ExternalToolError
from xzctl.images.catalog import default_catalog_dir
from xzctl.images.inputs import download_wheels, load_build_spec

IMAGE = "xiaozhi-server"
CACHE_ENV = "XZCTL_XIAOZHI_CACHE"
INSTALL_TIMEOUT = 1800.0
DONE = ".xzctl-complete"  # written last: a venv without it is a build that did not finish


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "xzctl" / "xiaozhi-server")


def venv_dir(catalog_dir: Path | None = None) -> Path:
    """Where the venv for the current wheel list and this Python lives (built or not)."""
    spec = load_build_spec((catalog_dir or default_catalog_dir()) / IMAGE)
    key = json.dumps([[w.name, w.version, w.sha256] for w in spec.wheels] + [list(sys.version_info[:3])])
    return cache_root() / f"venv-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def server_python(catalog_dir: Path | None = None) -> Path:
    """The venv's python, building the venv first when it is missing (minutes once, then nothing)."""
    venv = venv_dir(catalog_dir)
    if (venv / DONE).is_file():
        return venv / "bin" / "python"
    spec = load_build_spec((catalog_dir or default_catalog_dir()) / IMAGE)
    wheels = download_wheels(spec.wheels, cache_root())
    venv.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"{venv.name}.building-", dir=venv.parent))
    try:
        _run([sys.executable, "-m", "venv", "--clear", str(build)], "python -m venv")
        with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=build, delete=False) as req:
            for wheel, path in zip(spec.wheels, wheels, strict=True):
                req.write(f"{path} --hash=sha256:{wheel.sha256}\n")
        pip = [str(build / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run([*pip, "--no-index", "--no-deps", "--require-hashes", "-r", req.name], "pip install (xiaozhi server)")
        (build / DONE).write_text(json.dumps({"wheels": len(wheels)}), encoding="utf-8")
        try:
            build.rename(venv)
        except OSError:
            if not (venv / DONE).is_file():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return venv / "bin" / "python"


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ExternalToolError(f"{what} did not finish in {INSTALL_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise ExternalToolError(f"{what} failed ({done.returncode}): {tail}")


if __name__ == "__main__":
    sys.stdout.write(f"{server_python()}\n")
