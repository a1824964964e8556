"""PyTorch -> ONNX: inputs ``input_ids``/``attention_mask`` with dynamic batch and sequence.

The graph ends in a softmax per head (``<head>_probs`` outputs) so every runtime returns
probabilities without post-processing. The TorchScript exporter is used on purpose: its
graph is the one onnxruntime's BERT optimizer recognises for Attention/LayerNorm fusions.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from streamer.network.heads import MultiTaskModel, ProbabilityModel

INPUT_NAMES: tuple[str, str] = ("input_ids", "attention_mask")
OPSET = 17  # first opset with a native LayerNormalization


def output_names(model: MultiTaskModel) -> list[str]:
    return [f"{h}_probs" for h in model.head_names]


def export_onnx(model: MultiTaskModel, path: Path, opset: int = OPSET) -> list[str]:
    """Write ``model`` to ``path``; returns the output names (one per head, head order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    wrapper = ProbabilityModel(model).eval()
    # Batch 2 and length 16: dummy sizes that cannot be mistaken for constants (1 can).
    ids = torch.full((2, 16), 100, dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    outputs = output_names(model)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    axes.update({name: {0: "batch"} for name in outputs})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (ids, mask),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return outputs
