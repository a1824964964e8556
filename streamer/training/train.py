"""Multi-task fine-tuning: one encoder, both heads, batches that mix the two tasks.

Every example carries a label for exactly one head. The loss of a batch is the
cross-entropy of each example on its own head, averaged over the batch (the other
head's output for that row is masked out), so sentiment and topic rows train the
shared encoder in the same step. Batches are drawn length-sorted within shuffled
windows: on a CPU, padding a 25-token tweet to a 128-token news item is most of the cost.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from streamer.bundle.tokenize import SourceTokenizers
from streamer.network.encoder import Pooling
from streamer.network.heads import ModelMeta, MultiTaskModel, build_model
from streamer.training.config import TrainConfig
from streamer.training.data import HEADS, Example, SplitData
from streamer.training.progress import SILENT, Reporter

# (logits per head, batch row indices into the training set, head index, label index) -> loss
LossFn = Callable[[dict[str, torch.Tensor], np.ndarray, torch.Tensor, torch.Tensor], torch.Tensor]


class EpochLog(BaseModel):
    epoch: int
    steps: int
    loss: float
    seconds: float


@dataclass
class EncodedSet:
    """Token ids of a set of examples, plus per row: head index and label index."""

    ids: list[list[int]]
    head: np.ndarray
    label: np.ndarray
    dataset: list[str]
    head_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


def encode_examples(
    examples: Sequence[Example], tokenizers: SourceTokenizers, labels: dict[str, list[str]]
) -> EncodedSet:
    head_names = tuple(h for h in HEADS if h in labels)
    head_idx = {h: i for i, h in enumerate(head_names)}
    label_idx = {h: {name: i for i, name in enumerate(labels[h])} for h in head_names}
    ids = tokenizers.encode([e.text for e in examples], [e.source for e in examples])
    return EncodedSet(
        ids=ids,
        head=np.array([head_idx[e.head] for e in examples], dtype=np.int64),
        label=np.array([label_idx[e.head][e.label] for e in examples], dtype=np.int64),
        dataset=[e.dataset for e in examples],
        head_names=head_names,
    )


def make_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, window: int
) -> list[np.ndarray]:
    """Shuffled batches whose rows have similar lengths (sorted inside random windows)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * window
    batches: list[np.ndarray] = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches.extend(
            np.asarray(chunk[j : j + batch_size], dtype=np.int64)
            for j in range(0, len(chunk), batch_size)
        )
    rng.shuffle(batches)
    return batches


def collate(
    ids: Sequence[Sequence[int]], rows: np.ndarray, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad the rows to the longest of them (training keeps exact lengths; no buckets)."""
    width = max(len(ids[i]) for i in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        seq = ids[i]
        input_ids[r, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[r, : len(seq)] = 1
    return input_ids, mask


def masked_cross_entropy(
    logits: dict[str, torch.Tensor],
    head: torch.Tensor,
    label: torch.Tensor,
    head_names: Sequence[str],
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean over the batch of each row's cross-entropy on its own head only."""
    total = torch.zeros((), dtype=torch.float32)
    for k, name in enumerate(head_names):
        sel = head == k
        if bool(sel.any()):
            total = total + F.cross_entropy(
                logits[name][sel], label[sel], reduction="sum", label_smoothing=label_smoothing
            )
    return total / max(int(head.numel()), 1)


def _optimizer(model: MultiTaskModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay, head_params = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("heads."):
            head_params.append(p)
        elif p.ndim < 2:  # biases and LayerNorm weights: no weight decay
            no_decay.append(p)
        else:
            decay.append(p)
    return torch.optim.AdamW(
        [
            {"params": decay, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "lr": cfg.lr, "weight_decay": 0.0},
            {"params": head_params, "lr": cfg.head_lr, "weight_decay": 0.0},
        ]
    )


def fit(
    model: MultiTaskModel,
    data: EncodedSet,
    cfg: TrainConfig,
    pad_id: int,
    loss_fn: LossFn | None = None,
    reporter: Reporter = SILENT,
    description: str = "train",
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Train in place with AdamW and linear warmup/decay; fractional epochs allowed.

    ``on_epoch`` runs after each epoch (e.g. a validation pass for a learning curve); the
    model is in eval mode during the call and back in train mode after it.
    """
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    lengths = [len(s) for s in data.ids]
    per_epoch = math.ceil(len(data) / cfg.batch_size)
    total_steps = max(1, math.ceil(cfg.epochs * per_epoch))
    warmup = int(total_steps * cfg.warmup_ratio)
    opt = _optimizer(model, cfg)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        return max(0.0, (total_steps - step) / max(total_steps - warmup, 1))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    if loss_fn is None:
        names = data.head_names

        def loss_fn(
            logits: dict[str, torch.Tensor], rows: np.ndarray, h: torch.Tensor, y: torch.Tensor
        ) -> torch.Tensor:
            return masked_cross_entropy(logits, h, y, names, cfg.label_smoothing)

    heads_t = torch.from_numpy(data.head)
    labels_t = torch.from_numpy(data.label)
    model.train()
    logs: list[EpochLog] = []
    step = 0
    epoch = 0
    # Progress counts examples, so fractional epochs and uneven batches read naturally.
    total_examples = min(total_steps * cfg.batch_size, math.ceil(cfg.epochs * len(data)))
    with reporter.bar(description, total=total_examples) as bar:
        while step < total_steps:
            epoch += 1
            start = time.perf_counter()
            running, seen = 0.0, 0
            for rows in make_batches(lengths, cfg.batch_size, rng, cfg.sort_window):
                if step >= total_steps:
                    break
                input_ids, mask = collate(data.ids, rows, pad_id)
                idx = torch.from_numpy(rows)
                logits = model(input_ids, mask)
                loss = loss_fn(logits, rows, heads_t[idx], labels_t[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                step += 1
                running += float(loss.detach()) * len(rows)
                seen += len(rows)
                bar.advance(len(rows))
                if step % 10 == 0:
                    bar.note(f"epoch {epoch} loss {running / max(seen, 1):.3f}")
            logs.append(
                EpochLog(
                    epoch=epoch,
                    steps=step,
                    loss=running / max(seen, 1),
                    seconds=time.perf_counter() - start,
                )
            )
            if on_epoch is not None:
                model.eval()
                on_epoch(logs[-1])
                model.train()
    model.eval()
    return logs


@torch.no_grad()
def predict_logits(
    model: MultiTaskModel,
    ids: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int = 64,
    reporter: Reporter = SILENT,
    description: str = "predict",
) -> dict[str, np.ndarray]:
    """Logits of every head for every row, in input order (length-sorted internally)."""
    model.eval()
    order = np.argsort([len(s) for s in ids], kind="stable")
    out: dict[str, np.ndarray] = {}
    with reporter.bar(description, total=len(ids)) as bar:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = collate(ids, rows, pad_id)
            logits = model(input_ids, mask)
            for h, t in logits.items():
                if h not in out:
                    out[h] = np.zeros((len(ids), t.shape[1]), dtype=np.float32)
                out[h][rows] = t.float().numpy()
            bar.advance(len(rows))
    return out


def head_accuracy(model: MultiTaskModel, data: EncodedSet, pad_id: int) -> dict[str, float]:
    """Accuracy of each head on its own rows of ``data`` (heads without rows are left out)."""
    logits = predict_logits(model, data.ids, pad_id)
    out: dict[str, float] = {}
    for k, name in enumerate(data.head_names):
        rows = data.head == k
        if rows.any():
            out[name] = float((logits[name][rows].argmax(axis=1) == data.label[rows]).mean())
    return out


def train_multitask(
    split: SplitData,
    tokenizers: SourceTokenizers,
    base: str,
    cfg: TrainConfig,
    layers: Sequence[int] | None = None,
    pooling: Pooling = "mean",
    reporter: Reporter = SILENT,
    description: str = "teacher",
    init_seed: int | None = None,
) -> tuple[MultiTaskModel, ModelMeta, list[EpochLog]]:
    """Fine-tune the base (all layers: the teacher; or ``layers`` of it) on both heads.

    ``init_seed`` seeds the new heads' weights (default ``cfg.seed``, which also seeds data
    order and dropout): models differing only in ``cfg.seed`` can start from the same heads.
    """
    torch.manual_seed(cfg.seed if init_seed is None else init_seed)
    labels: dict[str, list[str]] = {h: split.labels[h] for h in HEADS}
    model, meta = build_model(base, labels, layers=layers, pooling=pooling)
    data = encode_examples(split.train, tokenizers, labels)
    logs = fit(model, data, cfg, tokenizers.pad_id, reporter=reporter, description=description)
    return model, meta, logs
