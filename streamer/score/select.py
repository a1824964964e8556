"""Pick the scorer a worker runs with, from settings."""

from __future__ import annotations

import logging

from streamer.score.base import Scorer, ScorerError
from streamer.score.baseline import BaselineScorer
from streamer.settings import Settings

log = logging.getLogger(__name__)


def load_baseline(settings: Settings) -> BaselineScorer:
    return BaselineScorer.train(settings.labelled_data_dir, settings.cache_dir / "baseline")


def load_scorer(settings: Settings) -> Scorer:
    """The configured scorer, warmed up. Raises ScorerError with what to do on failure."""
    if settings.scorer == "onnx":
        raise ScorerError(
            "the ONNX scorer needs a model bundle and none is installed; "
            "use STREAMER_SCORER=baseline (or auto)"
        )
    if settings.scorer == "auto":
        log.warning("no model bundle available: scoring with the Naive Bayes baseline")
    scorer: Scorer = load_baseline(settings)
    scorer.warmup()
    log.info("scorer: %s", scorer.name)
    return scorer


def prepare_scorer(settings: Settings) -> str:
    """Make sure the configured scorer can load (building what it needs); return its name."""
    return load_scorer(settings).name
