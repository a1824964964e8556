"""Knowledge distillation: a student keeping N of the teacher's layers learns its soft labels.

The student starts as a copy of the fine-tuned teacher with only the chosen blocks (not
from the raw base): it already has the teacher's embeddings, heads and task features, so
a short run recovers most of the accuracy. The loss mixes a temperature-scaled KL term
against the teacher's probabilities (on every head for every row: the teacher's topic
opinion of a tweet is still information) with the masked cross-entropy on the true label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from streamer.network.encoder import num_layers, pick_layers
from streamer.network.heads import ModelMeta, MultiTaskModel, copy_with_layers
from streamer.training.config import DistillConfig, TrainConfig
from streamer.training.progress import SILENT, Reporter
from streamer.training.train import EncodedSet, EpochLog, fit, masked_cross_entropy


def kd_loss(
    student: dict[str, torch.Tensor],
    teacher: dict[str, torch.Tensor],
    head: torch.Tensor,
    label: torch.Tensor,
    head_names: Sequence[str],
    cfg: DistillConfig,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * masked CE."""
    t = cfg.temperature
    kl = torch.zeros((), dtype=torch.float32)
    for k, name in enumerate(head_names):
        rows = torch.ones_like(head, dtype=torch.bool) if cfg.all_heads else head == k
        if not bool(rows.any()):
            continue
        log_p_student = F.log_softmax(student[name][rows] / t, dim=-1)
        p_teacher = F.softmax(teacher[name][rows] / t, dim=-1)
        # T^2 keeps the soft-target gradients on the same scale as the hard-label ones.
        kl = kl + F.kl_div(log_p_student, p_teacher, reduction="batchmean") * (t * t)
    ce = masked_cross_entropy(student, head, label, head_names)
    return cfg.alpha * kl + (1.0 - cfg.alpha) * ce


def make_student(
    teacher: MultiTaskModel, teacher_meta: ModelMeta, n_layers: int
) -> tuple[MultiTaskModel, ModelMeta, list[int]]:
    """A copy of the teacher with ``n_layers`` blocks picked evenly (first and last kept)."""
    indices = pick_layers(num_layers(teacher.encoder), n_layers)
    student, meta = copy_with_layers(teacher, teacher_meta, indices)
    return student, meta, indices


def distill(
    teacher: MultiTaskModel,
    teacher_meta: ModelMeta,
    teacher_logits: dict[str, np.ndarray],
    data: EncodedSet,
    n_layers: int,
    cfg: TrainConfig,
    kd: DistillConfig,
    pad_id: int,
    reporter: Reporter = SILENT,
) -> tuple[MultiTaskModel, ModelMeta, list[EpochLog]]:
    """Train an ``n_layers`` student on ``data`` against precomputed ``teacher_logits``."""
    student, meta, _ = make_student(teacher, teacher_meta, n_layers)
    soft = {h: torch.from_numpy(v) for h, v in teacher_logits.items()}
    names = data.head_names

    def loss_fn(
        logits: dict[str, torch.Tensor], rows: np.ndarray, h: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        idx = torch.from_numpy(rows)
        return kd_loss(logits, {k: v[idx] for k, v in soft.items()}, h, y, names, kd)

    logs = fit(
        student,
        data,
        cfg,
        pad_id,
        loss_fn=loss_fn,
        reporter=reporter,
        description=f"student-{n_layers}L",
    )
    return student, meta, logs
