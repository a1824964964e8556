"""A model swap between batches, framework-free: the batch in flight finishes on the old
scorer and its records name the old model; the next batch starts on the new one."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Sequence

from batch_support import KeywordScorer, record
from redis.asyncio import Redis

from streamer.aggregate import TrendStore
from streamer.batch import BatchProcessor
from streamer.metrics import Metrics
from streamer.schemas import ModelRef
from streamer.score.base import BatchScores, Source
from streamer.score.pool import ScoringPool
from streamer.settings import Settings


class GatedScorer(KeywordScorer):
    """A keyword scorer of its own model id that holds each batch until the test lets go."""

    def __init__(self, name: str, digit: str) -> None:
        self.name = name
        self.model = ModelRef(bundle_id=digit * 16, bundle=name, variant="keyword")
        self.entered = threading.Event()
        self.gate = threading.Event()

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        return super().score(texts, sources)


async def test_the_batch_in_flight_keeps_its_model_and_the_next_takes_the_new_one() -> None:
    settings = Settings(_env_file=None)
    old, new = GatedScorer("old", "a"), GatedScorer("new", "b")
    pool = ScoringPool(old, threads=2, queue_depth=0)
    # The score phase has no side effect outside the process: Redis is never contacted.
    store = TrendStore(Redis(), settings.redis, settings.aggregate)
    proc = BatchProcessor(settings.input, settings.topics, pool, store, metrics=Metrics())
    try:
        first = asyncio.create_task(proc.score([record(1), record(2)]))
        assert await asyncio.to_thread(old.entered.wait, 10)
        assert pool.swap(new) is old  # while the first batch is on a scoring thread
        new.gate.set()
        second = await proc.score([record(3)])
        old.gate.set()
        out = await first
        assert [(e.scorer, e.model) for e in out.scored] == [("old", old.model)] * 2
        assert [(e.scorer, e.model) for e in second.scored] == [("new", new.model)]

        # Nothing holds the old scorer once its batch is done (the scoring thread lets go
        # of its call a moment after handing the result over).
        gone = weakref.ref(old)
        del old, first, out
        for _ in range(100):
            if gone() is None:
                break
            await asyncio.sleep(0.01)
        assert gone() is None
    finally:
        pool.shutdown()
