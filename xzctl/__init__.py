"""xzctl: the control plane for a Xiaozhi ESP32 voice-assistant fleet."""

import os
from collections.abc import Callable
from pathlib import Path

__version__ = "0.1.0"


def data_path(*parts: str) -> Path:
    """A file or folder shipped as package data under xzctl/data/ (in a checkout, symlinks to the top-level
    templates/, runbooks/, inference_images/ and ansible/ folders; in a wheel, copies of them)."""
    from importlib import resources

    return Path(str(resources.files("xzctl").joinpath("data", *parts)))


def input_path(
    explicit: str | Path | None,
    env_var: str,
    local: str,
    is_there: Callable[[Path], bool],
    *shipped: str,
    cwd: Path | None = None,
) -> Path:
    """The lookup order of every input file: the flag, else $env_var, else `local` in the working directory
    when `is_there` says it is usable, else the copy shipped with xzctl (`data_path(*shipped)`)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    here = (cwd or Path.cwd()) / local
    return here if is_there(here) else data_path(*shipped)
