"""xzctl: the control plane for a Xiaozhi ESP32 voice-assistant fleet."""

from pathlib import Path

__version__ = "0.1.0"


def data_path(*parts: str) -> Path:
    """A file or folder shipped as package data under xzctl/data/ (in a checkout, symlinks to the top-level
    templates/, runbooks/, inference_images/ and ansible/ folders; in a wheel, copies of them)."""
    from importlib import resources

    return Path(str(resources.files("xzctl").joinpath("data", *parts)))
