"""Check an ONNX variant against the PyTorch model it was made from; fail the build if off.

Both run on the same fixed sample of token ids (padded identically). Two numbers per
head: argmax agreement (does the served label change?) and the largest absolute
probability difference (does a threshold on a probability move?). Limits depend on the
precision: FP32 must match to rounding, INT8 may flip a few borderline rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from streamer.bundle.manifest import Precision, VerifyResult

if TYPE_CHECKING:
    from streamer.network.heads import MultiTaskModel


class Tolerance(BaseModel):
    min_agreement: float = Field(ge=0, le=1)
    max_diff: float = Field(ge=0, le=1)


DEFAULT_TOLERANCES: dict[Precision, Tolerance] = {
    "fp32": Tolerance(min_agreement=0.99, max_diff=1e-3),
    "fp16": Tolerance(min_agreement=0.97, max_diff=0.05),
    "int8": Tolerance(min_agreement=0.90, max_diff=0.5),
}


class VerifyError(RuntimeError):
    """An exported variant disagrees with its source model beyond tolerance."""


def sample_rows(n_rows: int, k: int, seed: int = 0) -> list[int]:
    """A fixed, seeded choice of ``k`` row indices (sorted)."""
    rng = np.random.default_rng(seed)
    k = min(k, n_rows)
    return sorted(int(i) for i in rng.choice(n_rows, size=k, replace=False))


def _padded(ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(s) for s in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros_like(input_ids)
    for r, s in enumerate(ids):
        input_ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    return input_ids, mask


def torch_probs(
    model: MultiTaskModel, ids: Sequence[Sequence[int]], pad_id: int, batch: int = 32
) -> dict[str, np.ndarray]:
    import torch

    out: dict[str, list[np.ndarray]] = {h: [] for h in model.head_names}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(ids), batch):
            x, m = _padded(ids[start : start + batch], pad_id)
            logits = model(torch.from_numpy(x), torch.from_numpy(m))
            for h in model.head_names:
                out[h].append(torch.softmax(logits[h], dim=-1).numpy())
    return {h: np.concatenate(v) for h, v in out.items()}


def onnx_probs(
    path: Path,
    head_names: Sequence[str],
    ids: Sequence[Sequence[int]],
    pad_id: int,
    batch: int = 32,
    providers: Sequence[str] = ("CPUExecutionProvider",),
) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), opts, providers=list(providers))
    outputs = [f"{h}_probs" for h in head_names]
    out: dict[str, list[np.ndarray]] = {h: [] for h in head_names}
    for start in range(0, len(ids), batch):
        x, m = _padded(ids[start : start + batch], pad_id)
        for h, arr in zip(head_names, session.run(outputs, {"input_ids": x, "attention_mask": m}),
                          strict=True):
            out[h].append(np.asarray(arr, dtype=np.float32))
    return {h: np.concatenate(v) for h, v in out.items()}


def compare(
    reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], tol: Tolerance
) -> VerifyResult:
    agreement: dict[str, float] = {}
    diff: dict[str, float] = {}
    n = 0
    for h, ref in reference.items():
        cand = candidate[h]
        n = ref.shape[0]
        agreement[h] = float((ref.argmax(1) == cand.argmax(1)).mean())
        diff[h] = float(np.abs(ref - cand).max())
    passed = all(a >= tol.min_agreement for a in agreement.values()) and all(
        d <= tol.max_diff for d in diff.values()
    )
    return VerifyResult(
        n=n,
        argmax_agreement=agreement,
        max_prob_diff=diff,
        min_agreement=tol.min_agreement,
        max_diff=tol.max_diff,
        passed=passed,
    )


def verify_variant(
    model: MultiTaskModel,
    onnx_path: Path,
    ids: Sequence[Sequence[int]],
    pad_id: int,
    precision: Precision,
    tolerance: Tolerance | None = None,
    reference: dict[str, np.ndarray] | None = None,
) -> VerifyResult:
    """Compare and raise :class:`VerifyError` when out of tolerance.

    ``reference``: the PyTorch probabilities for ``ids`` when already computed (several
    variants of one model share them).
    """
    tol = tolerance or DEFAULT_TOLERANCES[precision]
    ref = reference if reference is not None else torch_probs(model, ids, pad_id)
    try:
        cand = onnx_probs(onnx_path, model.head_names, ids, pad_id)
    except Exception as exc:  # onnxruntime's errors have no common base
        if precision == "fp16":
            # Some CPU builds lack FP16 kernels; the GPU is where this variant is meant to run.
            return VerifyResult(
                n=0,
                argmax_agreement={},
                max_prob_diff={},
                min_agreement=tol.min_agreement,
                max_diff=tol.max_diff,
                passed=True,
                skipped=f"cannot run FP16 on this machine's CPU provider: {exc}",
            )
        raise VerifyError(f"{onnx_path.name} does not run: {exc}") from exc
    result = compare(ref, cand, tol)
    if not result.passed:
        raise VerifyError(
            f"{onnx_path.name} ({precision}) is out of tolerance against its PyTorch source on "
            f"{result.n} fixed rows: argmax agreement {result.argmax_agreement} (min "
            f"{tol.min_agreement}), max prob diff {result.max_prob_diff} (max {tol.max_diff})"
        )
    return result
