"""Pick the scorer a worker runs with, from settings.

``onnx``: the model bundle (``STREAMER_BUNDLE_DIR``, else the cached default bundle,
built with the quick profile on first use), or a ``ScorerError`` saying what to do.
``auto``: the same, but a machine that cannot build a bundle (no ``train`` extra) falls
back to the Naive Bayes baseline with a warning. ``baseline``: the baseline only.
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
    from streamer.models.quick import ensure_default_bundle
    from streamer.score.onnx_scorer import OnnxScorer

    path = ensure_default_bundle(settings, threads=settings.bundle_build_threads)
    return OnnxScorer(
        path,
        variant=settings.bundle_variant,
        intra_op_threads=settings.ort_intra_op_threads,
        max_group=settings.score_max_group,
    )


def load_scorer(settings: Settings) -> Scorer:
    """The configured scorer, warmed up. Raises ScorerError with what to do on failure."""
    scorer: Scorer
    if settings.scorer == "baseline":
        scorer = load_baseline(settings)
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
