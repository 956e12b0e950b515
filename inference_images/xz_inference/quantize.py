"""Build step of the VAD image: dynamic 8-bit quantisation of silero-vad, as the seed plans (weights 8-bit,
activations quantised at run time). Runs inside the image build, offline, with the build-only onnx wheels."""

from __future__ import annotations

import os
import sys


def main(source: str, target: str) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # unsigned weights: onnxruntime's CPU ConvInteger kernel takes uint8 weights only (QInt8 loads, then fails)
    quantize_dynamic(source, target, weight_type=QuantType.QUInt8)
    os.unlink(source)  # only the int8 model ships


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
