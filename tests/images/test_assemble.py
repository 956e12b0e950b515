"""The GPU variant of an image's build inputs: its env and wheels apply with --gpu only, and an image without one
refuses --gpu before any build work."""

from __future__ import annotations

from pathlib import Path

import pytest

from xzctl import service_contract as sc
from xzctl.errors import BadInputError
from xzctl.images.assemble import _image_env, assemble
from xzctl.images.inputs import load_build_spec

CATALOG = Path(__file__).resolve().parents[2] / "inference_images"


@pytest.mark.parametrize(("gpu", "device"), [(False, None), (True, "cuda")])
def test_the_asr_gpu_variant_sets_cuda_only_when_asked(gpu: bool, device: str | None) -> None:
    spec = load_build_spec(CATALOG / "asr")
    env = _image_env("asr", spec, None, "asr:9", None, gpu=gpu)
    assert env.get(sc.WHISPER_DEVICE_ENV) == device
    assert env[sc.ASR_ENGINE_ENV] == "whisper" and env[sc.IMAGE_ENV] == "asr:9"
    assert spec.gpu_variant is not None
    assert {w.name for w in spec.gpu_variant.wheels} == {"nvidia-cublas-cu12", "nvidia-cudnn-cu12"}


def test_an_image_without_a_gpu_variant_refuses_gpu(tmp_path: Path) -> None:
    spec = load_build_spec(CATALOG / "vad")
    with pytest.raises(BadInputError, match="no GPU variant"):
        assemble(
            "vad", "9.0.0", spec, service="vad", repository="r/vad", state_dir=tmp_path, catalog_root=CATALOG, gpu=True
        )
    assert not (tmp_path / "images").exists()
