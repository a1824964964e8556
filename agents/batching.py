"""Batches whose size and wait may change from one batch to the next.

Faust's ``Stream.take_events(max_, within)`` fixes both for the life of the stream.
``VariableBatches`` mirrors its mechanics (a stream processor fills a buffer while the
stream is drained passively; stream acks are disabled so events stay unacked until
the consumer is done with a batch; new events are held back while a batch is being
processed) and asks ``limits()`` before every batch. Three differences, on purpose:

* the wait runs from the first event of the batch (not from the previous batch), and
  an idle stream waits for that event without waking up every ``within`` seconds;
* when the wait ends with events already queued in the stream's channel, they are
  drained into the batch (up to its size, for at most ``drain_s``, however short the
  wait) instead of starting a new batch with a new wait: a backlog becomes full batches
  at once, so the wait can be near zero without splitting a backlog into small batches;
* the consumer acks each batch itself (``await batches.ack(batch)``) once its writes are
  done, which may be after it has asked for the next batch: it can score batch N+1
  while batch N's writes are in flight. A consumer that stops before acking (crash,
  shutdown) leaves those events unacked, and acks are not turned back on afterwards, so
  neither they nor anything the stream pulls later is committed, and a restart sees them
  again.

Nothing here blocks the event loop: every wait is an ``await``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from faust.types import EventT

log = logging.getLogger(__name__)

Limits = Callable[[], tuple[int, float]]
# The event loop's epoll rounds a timeout up to whole milliseconds: a 0.2 ms wait would
# hold every batch for 1 ms (the measured batch wait: docs/BENCHMARKS.md).
_TIMER_RESOLUTION_S = 0.001


class VariableBatches:
    def __init__(self, stream: Any, limits: Limits, drain_s: float,
                 on_ready: Callable[[str], None] | None = None) -> None:
        self.stream = stream
        self.limits = limits
        self.drain_s = drain_s
        # Told (with the event's topic) each time the stream is done with an event and
        # goes back for the next, after any wait for the batch: the worker is ready for
        # its next record from then on.
        self.on_ready = on_ready
        self._parked = False  # an event waits in the processor for the batch to finish

    def backlog(self) -> int:
        """Events received by the stream and waiting for a batch (0 when unknown)."""
        return self._queued() + int(self._parked)

    async def ack(self, batch: list[EventT]) -> None:
        """Mark a batch done: its offsets may be committed (and the sensors hear of it)."""
        for event in batch:
            await self.stream.ack(event)

    def _queued(self) -> int:
        try:
            return int(self.stream.channel.queue.qsize())
        except Exception:
            return 0

    async def __aiter__(self) -> AsyncIterator[list[EventT]]:
        stream = self.stream
        loop = asyncio.get_running_loop()
        buffer: list[EventT] = []
        max_size = max(1, self.limits()[0])
        first_at = 0.0
        buffer_full = asyncio.Event()
        buffer_consumed = asyncio.Event()
        first_in = asyncio.Event()
        buffer_consuming: asyncio.Future[None] | None = None
        channel_it = stream.channel.__aiter__()

        async def add_to_buffer(value: Any) -> Any:
            nonlocal buffer_consuming, first_at
            try:
                # Hold new events back while the consumer processes a batch.
                while buffer_consuming is not None:
                    fut = buffer_consuming
                    self._parked = True
                    try:
                        await fut
                    finally:
                        self._parked = False
                        if buffer_consuming is fut:
                            buffer_consuming = None
                event = stream.current_event
                if event is None:
                    raise RuntimeError("batch buffer found current_event is None")
                if not buffer:
                    first_at = loop.time()
                    first_in.set()
                buffer.append(event)
                if len(buffer) >= max_size:
                    buffer_full.set()
                    buffer_consumed.clear()
                    await stream.wait(buffer_consumed)
                if self.on_ready is not None:
                    self.on_ready(event.message.topic)
            except asyncio.CancelledError:  # pragma: no cover
                raise
            except Exception as exc:
                stream.log.exception("Error adding to batch buffer: %r", exc)
                await stream.crash(exc)
            return value

        stream.enable_acks = False
        stream.add_processor(add_to_buffer)
        stream._enable_passive(channel_it)
        try:
            while not stream.should_stop:
                size, wait_s = self.limits()
                max_size = max(1, size)
                if len(buffer) >= max_size:
                    buffer_full.set()
                if not buffer:
                    first_in.clear()
                    if await stream.wait_for_stopped(first_in):
                        break
                remaining = first_at + wait_s - loop.time()
                if len(buffer) < max_size and remaining > 0:
                    if remaining >= _TIMER_RESOLUTION_S:
                        await stream.wait_for_stopped(buffer_full, timeout=remaining)
                    else:
                        # A shorter timed wait would last a whole millisecond: one pass of
                        # the loop lets in what has arrived (the drain below takes the rest).
                        await asyncio.sleep(0)
                # Already queued: into this batch rather than the next one's wait.
                drain_until = loop.time() + self.drain_s
                while (len(buffer) < max_size and self._queued() > 0
                       and loop.time() < drain_until and not stream.should_stop):
                    await asyncio.sleep(0)
                if not buffer:  # pragma: no cover - the wait above returned on stop
                    continue
                batch = buffer[:max_size]
                buffer_consuming = loop.create_future()
                yield batch
                # The consumer came back for more: let events in. It acks the batch
                # itself, when its writes are done.
                del buffer[:len(batch)]
                if not buffer_consuming.done():
                    buffer_consuming.set_result(None)
                buffer_full.clear()
                buffer_consumed.set()
        finally:
            if buffer_consuming is not None and not buffer_consuming.done():
                buffer_consuming.set_result(None)
            buffer_consumed.set()
            # Acks stay off: this ends when the stream stops or the consumer gave up on a
            # batch (a crash). Turned back on, the stream's passive drainer would ack the
            # events it still pulls, unprocessed, and shutdown would commit their offsets.
            stream._processors.remove(add_to_buffer)
