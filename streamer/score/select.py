"""Pick the scorer a worker runs with, from settings.

``onnx``: the model bundle (``streamer.bundle.locate``: ``STREAMER_BUNDLE_DIR``, else the
promoted bundle, else the full build once complete, else the quick default; the
caller may pass ``build``, which makes one when none exists: the CLI passes
``streamer.training.quick.build_if_missing``, so serving code never imports the trainer),
or a ``ScorerError`` saying what to do.
``auto``: the same, but a machine that cannot build a bundle (no ``train`` extra) falls
back to the Naive Bayes baseline with a warning. ``baseline``: the baseline only.
``torch``: the same bundle directory's PyTorch teacher checkpoint (kept by a full build, never
built here), on CUDA with FP16 and CUDA graphs when torch sees a GPU, else on CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from streamer.bundle.errors import BundleError
from streamer.bundle.locate import default_bundle_path
from streamer.score.base import Scorer, ScorerError, check_sentiment_labels
from streamer.score.baseline import BaselineScorer
from streamer.settings import Settings

log = logging.getLogger(__name__)


def load_baseline(settings: Settings) -> BaselineScorer:
    return BaselineScorer.train(settings.scoring.labelled_data_dir,
                                settings.paths.cache_dir / "baseline")


BundleBuilder = Callable[[Settings], Path]


def load_onnx(settings: Settings, build: BundleBuilder | None = None) -> Scorer:
    """The bundle's ONNX Runtime scorer; ``build`` makes the bundle first when none exists."""
    path = build(settings) if build is not None else default_bundle_path(settings)
    return onnx_scorer(settings, path)


def onnx_scorer(settings: Settings, path: Path) -> Scorer:
    """The ONNX Runtime scorer of the bundle at ``path``, as the settings configure it."""
    from streamer.score.onnx_scorer import OnnxScorer

    return OnnxScorer(
        path,
        variant=settings.scoring.bundle_variant,
        intra_op_threads=settings.scoring.ort_intra_op_threads,
        max_group=settings.scoring.score_max_group,
        max_tokens=settings.scoring.score_max_tokens,
        int8_rows_alone=settings.scoring.score_int8_rows_alone,
        tensorrt=settings.scoring.ort_tensorrt,
        trt_cache=settings.paths.cache_dir / "tensorrt",
    )


def load_torch(settings: Settings) -> Scorer:
    """The bundle's PyTorch teacher, on the configured device.

    Unlike ``onnx`` this never builds the quick default bundle: that profile keeps no
    PyTorch checkpoint, so building it would only end in the same error minutes later.
    """
    return torch_scorer(settings, default_bundle_path(settings))


def torch_scorer(settings: Settings, path: Path) -> Scorer:
    """The PyTorch teacher of the bundle at ``path``, on the configured device."""
    from streamer.score.torch_scorer import TorchScorer, resolve_device

    device = resolve_device(settings.scoring.torch_device)
    if device == "cpu":
        import torch

        torch.set_num_threads(settings.scoring.torch_threads)
    log.info(
        "torch scorer: bundle %s, device %s (asked: %s), CUDA graphs %s",
        path, device, settings.scoring.torch_device,
        "on" if settings.scoring.torch_cuda_graphs and device == "cuda" else "off",
    )
    return TorchScorer.from_bundle(
        path,
        device=device,
        cuda_graphs=settings.scoring.torch_cuda_graphs and device == "cuda",
        max_graphs=settings.scoring.torch_max_graphs,
    )


def bundle_scorer(settings: Settings, path: Path) -> Scorer:
    """The configured kind of scorer (torch, else ONNX Runtime) over the bundle at
    ``path``, not warmed up: what a model upgrade loads beside the live scorer."""
    if settings.scoring.scorer == "torch":
        return torch_scorer(settings, path)
    return onnx_scorer(settings, path)


def load_scorer(settings: Settings, build: BundleBuilder | None = None) -> Scorer:
    """The configured scorer, warmed up. Raises ScorerError with what to do on failure
    (a bundle's ``BundleError`` included)."""
    try:
        return _load_scorer(settings, build)
    except BundleError as exc:
        raise ScorerError(str(exc)) from exc


def _load_scorer(settings: Settings, build: BundleBuilder | None) -> Scorer:
    scorer: Scorer
    if settings.scoring.scorer == "baseline":
        scorer = load_baseline(settings)
    elif settings.scoring.scorer == "torch":
        scorer = load_torch(settings)  # asked for explicitly: no baseline fallback
    else:
        try:
            scorer = load_onnx(settings, build)
        except (ScorerError, BundleError) as exc:
            if settings.scoring.scorer == "onnx" or settings.scoring.bundle_dir is not None:
                raise  # asked for a bundle explicitly: a broken one is an error
            log.warning("no model bundle (%s): scoring with the Naive Bayes baseline", exc)
            scorer = load_baseline(settings)
    check_sentiment_labels(scorer.name, scorer.sentiment_labels)
    scorer.warmup()
    log.info("scorer: %s, model %s", scorer.name, scorer.model.short())
    return scorer


def prepare_scorer(settings: Settings, build: BundleBuilder | None = None) -> str:
    """Make sure the configured scorer can load (building what it needs); return its name."""
    return load_scorer(settings, build).name
