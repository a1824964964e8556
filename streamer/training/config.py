"""Training and distillation settings (torch-free, so build plans import without torch)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TrainConfig(BaseModel):
    epochs: float = Field(3.0, gt=0)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-5, gt=0, description="Encoder learning rate.")
    head_lr: float = Field(1e-3, gt=0, description="Heads start from scratch: a higher rate.")
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    grad_clip: float = 1.0
    label_smoothing: float = Field(
        0.0, ge=0, lt=1,
        description="Cross-entropy label smoothing; 0 = off (0.1 did not help the full "
        "teacher's sentiment accuracy: docs/BENCHMARKS.md).",
    )
    seed: int = 13
    threads: int = Field(2, ge=1, description="torch CPU threads.")
    sort_window: int = Field(50, ge=1, description="Batches per length-sorted window.")


class DistillConfig(BaseModel):
    temperature: float = Field(2.0, gt=0)
    alpha: float = Field(0.7, ge=0, le=1, description="Weight of the KL term; 1-alpha for CE.")
    all_heads: bool = Field(True, description="KL on both heads for every row, not only its own.")
