"""Pick the scorer a worker runs with, from settings.

``onnx``: the model bundle (``STREAMER_BUNDLE_DIR``, else the cached default bundle,
built with the quick profile on first use), or a ``ScorerError`` saying what to do.
``auto``: the same, but a machine that cannot build a bundle (no ``train`` extra) falls
back to the Naive Bayes baseline with a warning. ``baseline``: the baseline only.
``torch``: the same bundle directory's PyTorch teacher checkpoint (kept by a full build, never
built here), on CUDA with FP16 and CUDA graphs when torch sees a GPU, else on CPU.
"""

from __future__ import annotations

import logging

from streamer.score.base import Scorer, ScorerError
from streamer.score.baseline import BaselineScorer
from streamer.settings import Settings

log = logging.getLogger(__name__)


def load_baseline(settings: Settings) -> BaselineScorer:
    return BaselineScorer.train(settings.labelled_data_dir, settings.cache_dir / "baseline")


def load_onnx(settings: Settings) -> Scorer:
    """The bundle's ONNX Runtime scorer, building the quick default bundle if none exists."""
    from streamer.score.onnx_scorer import OnnxScorer
    from streamer.training.quick import ensure_default_bundle

    path = ensure_default_bundle(settings, threads=settings.bundle_build_threads)
    return OnnxScorer(
        path,
        variant=settings.bundle_variant,
        intra_op_threads=settings.ort_intra_op_threads,
        max_group=settings.score_max_group,
        int8_rows_alone=settings.score_int8_rows_alone,
        tensorrt=settings.ort_tensorrt,
        trt_cache=settings.cache_dir / "tensorrt",
    )


def load_torch(settings: Settings) -> Scorer:
    """The bundle's PyTorch teacher, on the configured device.

    Unlike ``onnx`` this never builds the quick default bundle: that profile keeps no
    PyTorch checkpoint, so building it would only end in the same error minutes later.
    """
    from streamer.score.torch_scorer import TorchScorer, resolve_device
    from streamer.training.quick import default_bundle_path

    path = default_bundle_path(settings)
    device = resolve_device(settings.torch_device)
    if device == "cpu":
        import torch

        torch.set_num_threads(settings.torch_threads)
    log.info(
        "torch scorer: bundle %s, device %s (asked: %s), CUDA graphs %s",
        path, device, settings.torch_device,
        "on" if settings.torch_cuda_graphs and device == "cuda" else "off",
    )
    return TorchScorer.from_bundle(
        path,
        device=device,
        cuda_graphs=settings.torch_cuda_graphs and device == "cuda",
        max_graphs=settings.torch_max_graphs,
    )


def load_scorer(settings: Settings) -> Scorer:
    """The configured scorer, warmed up. Raises ScorerError with what to do on failure."""
    scorer: Scorer
    if settings.scorer == "baseline":
        scorer = load_baseline(settings)
    elif settings.scorer == "torch":
        scorer = load_torch(settings)  # asked for explicitly: no baseline fallback
    else:
        try:
            scorer = load_onnx(settings)
        except ScorerError as exc:
            if settings.scorer == "onnx" or settings.bundle_dir is not None:
                raise  # asked for a bundle explicitly: a broken one is an error
            log.warning("no model bundle (%s): scoring with the Naive Bayes baseline", exc)
            scorer = load_baseline(settings)
    scorer.warmup()
    log.info("scorer: %s", scorer.name)
    return scorer


def prepare_scorer(settings: Settings) -> str:
    """Make sure the configured scorer can load (building what it needs); return its name."""
    return load_scorer(settings).name
