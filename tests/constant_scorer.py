"""A batch processor whose scorer needs no model, for tests of its score phase.

``BatchProcessor.score`` has no side effect outside the process, so the store's Redis
client is built but never connects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from redis.asyncio import Redis

from streamer.aggregate import TrendStore
from streamer.batch.processor import BatchOutput, BatchProcessor, RawRecord
from streamer.metrics import Metrics
from streamer.schemas import ModelRef
from streamer.score.base import BatchScores, Source
from streamer.score.pool import ScoringPool
from streamer.settings import Settings


class ConstantScorer:
    """Scores every text alike: these tests need a scorer, not a model."""

    name = "constant"
    model = ModelRef(bundle_id="0" * 16, bundle="test", variant="constant")
    sentiment_labels = ("negative", "neutral", "positive")
    topic_labels = ("Earnings",)

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        n = len(texts)
        return BatchScores(self.sentiment_labels, self.topic_labels,
                           np.full((n, 3), 1 / 3, np.float32), np.ones((n, 1), np.float32))

    def warmup(self) -> None:
        pass


def score_phase(settings: Settings, records: Sequence[RawRecord], metrics: Metrics) -> BatchOutput:
    """What the worker's score phase makes of ``records``."""
    pool = ScoringPool(ConstantScorer())
    store = TrendStore(Redis(), settings.redis, settings.aggregate)
    proc = BatchProcessor(settings.input, settings.topics, pool, store, metrics=metrics)
    try:
        return asyncio.run(proc.score(records))
    finally:
        pool.shutdown()
