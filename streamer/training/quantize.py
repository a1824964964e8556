"""Precision variants: INT8 dynamic quantization for CPU, FP16 for GPU.

Dynamic quantization stores weights (MatMul, Attention, the embedding Gather) as int8 and
quantizes activations on the fly: no calibration data, about 4x smaller, faster on CPU.
FP16 is produced by the optimizer pass with GPU fusions (see optimize.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from streamer.training.optimize import OptimizeReport, optimize_bert


def quantize_int8(src: Path, dst: Path, per_channel: bool = True) -> None:
    """INT8 weights for CPU from an (optimised) FP32 model.

    ``per_channel``: one scale per output channel of each weight matrix. A single scale per
    tensor let a few outlier columns of the CLS-pooled teacher crush the rest (probabilities
    off against PyTorch by more than the verification allows); per channel it stayed
    within, at the same size and speed (docs/BENCHMARKS.md).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quiets its "consider pre-processing" warning, restored below
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            # Fused contrib ops (Attention, BiasGelu...) defeat shape inference; their
            # outputs are float32, say so instead of failing.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)


def convert_fp16(src: Path, dst: Path, num_heads: int, hidden_size: int) -> OptimizeReport:
    """FP16 weights with GPU-oriented fusions, from the raw FP32 export."""
    return optimize_bert(src, dst, num_heads, hidden_size, use_gpu=True, fp16=True)
