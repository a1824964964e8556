"""Graph fusions with onnxruntime.transformers' BERT optimizer.

Fuses embedding+LayerNorm, multi-head Attention, Add+LayerNorm (SkipLayerNormalization)
and bias+GELU into single kernels: fewer, larger ops is what makes CPU inference fast.
The fusions are checked: an optimizer run that silently fused nothing (an unexpected
export pattern) is an error, not a slower model in production.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import BaseModel


class OptimizeError(RuntimeError):
    pass


class OptimizeReport(BaseModel):
    fused: dict[str, int]
    use_gpu: bool


def optimize_bert(
    src: Path,
    dst: Path,
    num_heads: int,
    hidden_size: int,
    use_gpu: bool = False,
    fp16: bool = False,
    require_attention: bool = True,
) -> OptimizeReport:
    """Optimise ``src`` into ``dst`` (model_type bert); ``fp16`` also converts weights to FP16.

    ``use_gpu`` picks fusions that suit CUDA kernels; FP16 keeps float32 inputs/outputs so
    callers feed and read the same arrays for every variant.
    """
    from onnxruntime.transformers import optimizer

    # The optimizer logs every fusion at INFO; the report below says what matters.
    logging.getLogger("onnxruntime.transformers").setLevel(logging.WARNING)
    model = optimizer.optimize_model(
        str(src),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,  # graph-level fusions only; runtime-level ones happen at load time
        use_gpu=use_gpu,
    )
    stats = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    if require_attention and not stats.get("Attention") and not stats.get("MultiHeadAttention"):
        raise OptimizeError(
            f"the optimizer fused no attention in {src.name} (fused: {stats}); the export "
            "pattern changed - check that the encoder was loaded with eager attention"
        )
    if fp16:
        model.convert_float_to_float16(keep_io_types=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    model.save_model_to_file(str(dst))
    return OptimizeReport(fused=stats, use_gpu=use_gpu)
