"""One shared encoder, one linear head per task; save/load of a trained model.

Imports torch at the top: training uses it, and the torch scorer loads it lazily.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from streamer.bundle.manifest import CHECKPOINT_META
from streamer.network.encoder import Pooling, keep_layers, load_encoder, pool

HEADS_FILE = "heads.pt"
META_FILE = CHECKPOINT_META


class ModelMeta(BaseModel):
    """What is needed to rebuild a checkpoint besides its weights."""

    labels: dict[str, list[str]]
    pooling: Pooling
    base: str
    layers_from_base: list[int]
    dropout: float = 0.1


class MultiTaskModel(nn.Module):
    """Encoder -> pooled vector -> dropout -> one ``Linear`` per head (logits)."""

    def __init__(
        self,
        encoder: Any,
        labels: Mapping[str, Sequence[str]],
        pooling: Pooling = "mean",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling: Pooling = pooling
        self.head_names: tuple[str, ...] = tuple(labels)
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({h: nn.Linear(hidden, len(labels[h])) for h in labels})

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        # token_type_ids left to the encoder's zero default: single-segment inputs only.
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        vec = self.dropout(pool(hidden, attention_mask, self.pooling))
        return {h: self.heads[h](vec) for h in self.head_names}


class ProbabilityModel(nn.Module):
    """Export wrapper: the ONNX graph outputs softmax probabilities, one tensor per head."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        logits = self.model(input_ids, attention_mask)
        return tuple(torch.softmax(logits[h], dim=-1) for h in self.model.head_names)


def build_model(
    base: str,
    labels: Mapping[str, Sequence[str]],
    layers: Sequence[int] | None = None,
    pooling: Pooling = "mean",
    dropout: float = 0.1,
) -> tuple[MultiTaskModel, ModelMeta]:
    """A fresh model on the pretrained base, optionally keeping only ``layers`` of it."""
    encoder = load_encoder(base)
    total = int(encoder.config.num_hidden_layers)
    keep = list(range(total)) if layers is None else list(layers)
    if layers is not None:
        keep_layers(encoder, keep)
    model = MultiTaskModel(encoder, labels, pooling, dropout)
    meta = ModelMeta(
        labels={h: list(v) for h, v in labels.items()},
        pooling=pooling,
        base=base,
        layers_from_base=keep,
        dropout=dropout,
    )
    return model, meta


def save_model(model: MultiTaskModel, meta: ModelMeta, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(out_dir / "encoder")
    torch.save(model.heads.state_dict(), out_dir / HEADS_FILE)
    (out_dir / META_FILE).write_text(meta.model_dump_json(indent=2), "utf-8")


def load_model(model_dir: Path) -> tuple[MultiTaskModel, ModelMeta]:
    """A checkpoint written by :func:`save_model`, in eval mode."""
    meta = ModelMeta.model_validate(json.loads((model_dir / META_FILE).read_text("utf-8")))
    encoder = load_encoder(str(model_dir / "encoder"))
    model = MultiTaskModel(encoder, meta.labels, meta.pooling, meta.dropout)
    model.heads.load_state_dict(torch.load(model_dir / HEADS_FILE, weights_only=True))
    model.eval()
    return model, meta


def copy_with_layers(
    teacher: MultiTaskModel, teacher_meta: ModelMeta, indices: Sequence[int]
) -> tuple[MultiTaskModel, ModelMeta]:
    """A student: a deep copy of the teacher keeping the blocks at ``indices`` (and its heads)."""
    import copy

    student = copy.deepcopy(teacher)
    keep_layers(student.encoder, indices)
    meta = teacher_meta.model_copy(
        update={"layers_from_base": [teacher_meta.layers_from_base[i] for i in indices]}
    )
    return student, meta
