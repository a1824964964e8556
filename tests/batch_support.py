"""Shared helpers for the batch tests (no tests here): a scorer that chokes on 'poison',
input records, and a batch processor on a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from alert_support import alert_settings

from streamer.aggregate import TrendStore
from streamer.batch import BatchProcessor, RawRecord
from streamer.metrics import Metrics
from streamer.schemas import ModelRef
from streamer.score.base import BatchScores, Source
from streamer.score.pool import ScoringPool

T0 = datetime(2026, 1, 2, 3, 4, 0, tzinfo=UTC)


class KeywordScorer:
    """Deterministic test scorer: negative when the text says 'slump'."""

    name = "keyword"
    model = ModelRef(bundle_id="0" * 16, bundle="test", variant="keyword")
    sentiment_labels = ("negative", "neutral", "positive")
    topic_labels = ("Energy | Oil", "Markets")

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        neg = np.array([[1.0, 0.0, 0.0] if "slump" in t.lower() else [0.0, 1.0, 0.0]
                        for t in texts], np.float32)
        return BatchScores(self.sentiment_labels, self.topic_labels, neg,
                           np.tile(np.array([1.0, 0.0], np.float32), (len(texts), 1)))

    def warmup(self) -> None:
        pass


class PoisonScorer(KeywordScorer):
    """KeywordScorer that raises on any batch holding a text that says 'poison'."""

    name = "poison"

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        if any("poison" in t.lower() for t in texts):
            raise ValueError("the model choked")
        return super().score(texts, sources)


def record(offset: int, headline: str = "Crude slumps on supply glut") -> RawRecord:
    value = orjson.dumps({"schema_version": 1, "id": f"n{offset}", "source": "wire",
                          "headline": headline, "published_at": T0.isoformat()})
    return RawRecord("news", 0, offset, value)


@pytest.fixture
async def batch_processor(redis_url: str) -> AsyncIterator[BatchProcessor]:
    settings = alert_settings(redis_url)
    store = TrendStore.connect(settings.redis, settings.aggregate)
    pool = ScoringPool(PoisonScorer(), threads=1, queue_depth=0)
    yield BatchProcessor(settings.input, settings.topics, pool, store, metrics=Metrics())
    pool.shutdown()
    await store.close()
