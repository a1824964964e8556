"""Classification metrics in plain numpy (the eval command must not need scikit-learn)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class HeadMetrics(BaseModel):
    n: int
    accuracy: float
    macro_f1: float
    per_label_f1: dict[str, float]
    confusion: list[list[int]]  # rows: true label, columns: predicted, in ``labels`` order
    labels: list[str]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    cm = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def head_metrics(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                 labels: Sequence[str]) -> HeadMetrics:
    """Accuracy, macro-F1 over the labels present in truth or prediction, confusion matrix."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    cm = confusion_matrix(t, p, len(labels))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    # Labels absent from both truth and predictions (a small subset) would count as 0 F1.
    present = denom > 0
    macro = float(f1[present].mean()) if present.any() else 0.0
    return HeadMetrics(
        n=int(t.size),
        accuracy=float((t == p).mean()) if t.size else 0.0,
        macro_f1=macro,
        per_label_f1={name: float(f1[i]) for i, name in enumerate(labels)},
        confusion=cm.tolist(),
        labels=list(labels),
    )
