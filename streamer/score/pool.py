"""Scoring off the event loop: a thread pool with a bounded queue and backpressure.

Tokenization and ONNX Runtime release the GIL, so a batch scored on a pool thread
leaves the event loop free for Kafka and Redis I/O. At most ``threads`` batches run at
once and at most ``queue_depth`` more wait; a caller beyond that awaits a slot (the
agent then stops taking batches, Faust's buffers fill and it pauses fetching) instead
of piling work into an unbounded executor queue.

The scorer can be swapped while the pool runs (``swap``, a model upgrade): each batch
reads ``scorer`` once and scores on it to the end, so a batch started before the swap
finishes on the old model and the next one starts on the new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import Gauge

from streamer.score.base import BatchScores, Scorer, Source


class ScoringPool:
    def __init__(self, scorer: Scorer, *, threads: int = 1, queue_depth: int = 2,
                 gauge: Gauge | None = None) -> None:
        if threads < 1 or queue_depth < 0:
            raise ValueError("threads must be >= 1 and queue_depth >= 0")
        self._scorer = scorer
        self.threads = threads
        self.queue_depth = queue_depth
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="score")
        self._slots = asyncio.Semaphore(threads + queue_depth)
        self._gauge = gauge
        self.in_flight = 0  # running + queued batches
        self.waiting = 0  # callers held back by a full queue

    @property
    def scorer(self) -> Scorer:
        """The scorer a batch starting now runs on."""
        return self._scorer

    def swap(self, scorer: Scorer) -> Scorer:
        """Serve ``scorer`` from the next batch on; return the one it replaces (batches
        already scoring finish on it). Called on the event loop, between batches."""
        old, self._scorer = self._scorer, scorer
        return old

    async def score(self, texts: Sequence[str], sources: Sequence[Source],
                    scorer: Scorer | None = None) -> BatchScores:
        """``scorer.score`` (default: the live scorer) on a pool thread; waits for a slot
        when the queue is full."""
        scorer = scorer or self._scorer
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self._moved(+1)
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, scorer.score, texts, sources)
        finally:
            self._moved(-1)
            self._slots.release()

    def _moved(self, d: int) -> None:
        self.in_flight += d
        if self._gauge is not None:
            self._gauge.set(self.in_flight)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
