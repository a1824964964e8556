"""The scoring pool: off the event loop, bounded, with backpressure."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Gauge

from streamer.score.base import BatchScores, Source
from streamer.score.pool import ScoringPool


class GatedScorer:
    """Blocks each batch until the test opens the gate; records the thread it ran on."""

    name = "gated"
    sentiment_labels = ("negative", "neutral", "positive")
    topic_labels = ("a", "b")

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.threads: list[str] = []

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        self.threads.append(threading.current_thread().name)
        assert self.gate.wait(10), "the test never opened the gate"
        n = len(texts)
        return BatchScores(self.sentiment_labels, self.topic_labels,
                           np.full((n, 3), len(texts[0]), np.float32), np.zeros((n, 2), np.float32))

    def warmup(self) -> None:
        pass


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_batches_run_on_pool_threads_while_the_loop_stays_free() -> None:
    scorer = GatedScorer()
    pool = ScoringPool(scorer, threads=1, queue_depth=0)
    task = asyncio.create_task(pool.score(["abc"], ["chat"]))
    ticks = 0
    for _ in range(5):  # the loop keeps running while the scorer blocks its thread
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 5 and not task.done()
    scorer.gate.set()
    out = await task
    assert out.sentiment[0, 0] == 3
    assert scorer.threads == ["score_0"]
    pool.shutdown()


async def test_a_full_queue_holds_callers_back_until_a_slot_frees() -> None:
    scorer = GatedScorer()
    gauge = Gauge("in_flight", "test", registry=CollectorRegistry())
    pool = ScoringPool(scorer, threads=1, queue_depth=1, gauge=gauge)
    tasks = [asyncio.create_task(pool.score(["x" * (i + 1)], ["news"])) for i in range(3)]
    await _settle()
    assert (pool.in_flight, pool.waiting) == (2, 1)  # one running, one queued, one held
    assert gauge._value.get() == 2
    scorer.gate.set()
    results = await asyncio.gather(*tasks)
    assert [int(r.sentiment[0, 0]) for r in results] == [1, 2, 3]
    assert (pool.in_flight, pool.waiting) == (0, 0) and gauge._value.get() == 0
    pool.shutdown()


async def test_a_failing_batch_frees_its_slot() -> None:
    class Failing(GatedScorer):
        def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
            raise RuntimeError("boom")

    pool = ScoringPool(Failing(), threads=1, queue_depth=0)
    for _ in range(3):  # would hang on the second call if the slot leaked
        with pytest.raises(RuntimeError, match="boom"):
            await asyncio.wait_for(pool.score(["x"], ["chat"]), 5)
    assert pool.in_flight == 0
    pool.shutdown()
