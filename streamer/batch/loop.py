"""The scoring loop: each batch scored, then written in batch order, overlapped.

Two stages per batch:

1. **score** (no side effect outside the process): decode, tokenize, infer, off-loop;
2. **write**, under the write lock (the worker's commit gate), in batch order: Redis
   aggregates -> scored records and dead letters to the sink -> wait for the broker ->
   the after-write hook (alert detection) -> ack.

Batch N+1 is scored while batch N's writes are in flight (at most one batch writing at
a time), so the CPU infers while the network waits. Offsets are never acked past what
Redis and Kafka have acknowledged: a batch is acked only at the end of its own write
stage, and a batch that fails there stops the loop unacked, with the next one (scored,
never written) unacked behind it.

Framework-free: the Faust agent (``agents/scoring.py``) supplies the batches, the sink,
the lock and what to do on a failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Generic, Protocol, TypeVar

from streamer.batch.adaptive import AdaptiveFeedback
from streamer.batch.processor import BatchOutput, BatchProcessor, RawRecord
from streamer.batch.sink import Sink, publish
from streamer.latency import Clock

log = logging.getLogger(__name__)
E = TypeVar("E")


class Batches(Protocol[E]):
    """Batches of input events, and their acknowledgement once written."""

    def __aiter__(self) -> AsyncIterator[list[E]]: ...

    async def ack(self, batch: list[E]) -> None: ...

    def backlog(self) -> int:
        """Events already waiting for a batch."""
        ...


class ScoringLoop(Generic[E]):
    def __init__(
        self,
        processor: BatchProcessor,
        sink: Sink,
        *,
        records: Callable[[list[E]], list[RawRecord]],
        stop: Callable[[Exception], Awaitable[None]],
        write_lock: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
        after_write: Callable[[BatchOutput], Awaitable[None]] | None = None,
        lag: Callable[[list[E]], int] | None = None,
        feedback: AdaptiveFeedback | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.processor = processor
        self.sink = sink
        self.records = records
        self.stop = stop  # must end the run: the failed batch stays unacked
        self.write_lock = write_lock
        self.after_write = after_write
        self.lag = lag  # messages behind the log end on a batch's partitions, once written
        self.feedback = feedback
        self.clock = clock or processor.clock

    async def run(self, batches: Batches[E]) -> None:
        """Score and write every batch until the stream ends or a batch fails."""
        writing: asyncio.Task[bool] | None = None
        try:
            async for events in batches:
                started = self.clock.now_ms()
                try:
                    out = await self.processor.score(self.records(events))
                except Exception as exc:
                    await self.stop(exc)
                    return
                # Writes stay in batch order: this batch's wait for the previous one's
                # counts in its aggregate stage.
                previous, writing = writing, None  # awaited here: its error raises here
                if previous is not None and not await previous:
                    return
                writing = asyncio.create_task(self.write(batches, events, out, started))
        finally:
            if writing is not None:
                # Let the last batch's writes finish (and ack) rather than replay them;
                # nothing awaits this task after us, so its error is logged here or lost.
                await asyncio.wait([writing])
                if not writing.cancelled() and (failed := writing.exception()) is not None:
                    log.critical("the last batch's write stage failed: %r", failed,
                                 exc_info=failed)

    async def write(self, batches: Batches[E], events: list[E], out: BatchOutput,
                    started_ms: float) -> bool:
        """Stage 2 of one batch; False when it failed and the loop is stopping."""
        async with self._locked():
            try:
                await self.processor.aggregate(out)
                topics = self.processor.topics
                await publish(self.sink, out, topics.scored, topics.dlq)
                if self.after_write is not None:
                    await self.after_write(out)
            except Exception as exc:
                await self.stop(exc)
                return False
            await batches.ack(events)
        behind = self.lag(events) if self.lag is not None else 0
        if self.feedback is not None:
            now = self.clock.now_ms()
            self.feedback.after_batch(len(events), out.end_to_end_ms(), now - started_ms,
                                      max(behind, batches.backlog()), now)
        return True

    def _locked(self) -> AbstractAsyncContextManager[Any]:
        return self.write_lock() if self.write_lock is not None else nullcontext()
