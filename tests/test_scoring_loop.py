"""The scoring loop without Faust: batch order, acks after writes, a failed write stops
it unacked, adaptive feedback. Redis is real; the sink is an in-memory stand-in for the
Kafka producer (the pipeline tests run the loop against real Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from batch_support import record

from streamer.batch import BatchProcessor, RawRecord
from streamer.batch.adaptive import AdaptiveBatcher, AdaptiveFeedback, Decision
from streamer.batch.loop import ScoringLoop


class Sink:
    """Keeps what was sent; the broker 'acknowledges' after ``delay_s``; a text with
    'refused' in it makes the broker refuse that send."""

    def __init__(self, log: list[str], delay_s: float = 0.01) -> None:
        self.log = log
        self.delay_s = delay_s

    async def send(self, source: tuple[str, int], topic: str, key: bytes | None,
                   value: bytes, headers: list[tuple[str, bytes]] | None = None,
                   ) -> Awaitable[Any]:
        async def delivered() -> None:
            await asyncio.sleep(self.delay_s)
            if b"refused" in value:
                raise ConnectionError("broker refused the record")
            self.log.append(f"sent {key.decode() if key else ''}")

        return asyncio.ensure_future(delivered())


class Batches:
    def __init__(self, batches: list[list[RawRecord]], log: list[str]) -> None:
        self.batches = batches
        self.log = log

    async def __aiter__(self) -> AsyncIterator[list[RawRecord]]:
        for b in self.batches:
            yield b

    async def ack(self, batch: list[RawRecord]) -> None:
        self.log.append(f"ack {batch[0].offset}-{batch[-1].offset}")

    def backlog(self) -> int:
        return 0


def loop(proc: BatchProcessor, log: list[str], stopped: list[Exception],
         **kw: Any) -> ScoringLoop[RawRecord]:
    async def stop(exc: Exception) -> None:
        stopped.append(exc)

    return ScoringLoop(proc, Sink(log), records=list, stop=stop, **kw)


async def test_each_batch_is_acked_after_its_records_reached_the_broker_in_batch_order(
        batch_processor: BatchProcessor) -> None:
    log: list[str] = []
    batches = [[record(o) for o in range(i, i + 3)] for i in (0, 3, 6)]
    await loop(batch_processor, log, []).run(Batches(batches, log))
    assert log == ["sent n0", "sent n1", "sent n2", "ack 0-2",
                   "sent n3", "sent n4", "sent n5", "ack 3-5",
                   "sent n6", "sent n7", "sent n8", "ack 6-8"]


async def test_a_refused_write_stops_the_loop_and_leaves_it_and_the_next_batch_unacked(
        batch_processor: BatchProcessor) -> None:
    log: list[str] = []
    stopped: list[Exception] = []
    batches = [[record(0), record(1)], [record(2, "refused"), record(3)],
               [record(4), record(5)], [record(6), record(7)]]
    await loop(batch_processor, log, stopped).run(Batches(batches, log))
    assert [type(e) for e in stopped] == [ConnectionError]
    assert [line for line in log if line.startswith("ack")] == ["ack 0-1"]


async def test_the_write_lock_is_held_for_the_whole_write_stage(
        batch_processor: BatchProcessor) -> None:
    log: list[str] = []
    lock = asyncio.Lock()

    class Locked:
        async def __aenter__(self) -> None:
            await lock.acquire()
            log.append("lock")

        async def __aexit__(self, *exc: object) -> None:
            log.append("unlock")
            lock.release()

    await loop(batch_processor, log, [], write_lock=Locked).run(
        Batches([[record(0)], [record(1)]], log))
    assert log == ["lock", "sent n0", "ack 0-0", "unlock", "lock", "sent n1", "ack 1-1", "unlock"]


async def test_adaptive_feedback_hears_of_every_batch_and_shows_its_limits(
        batch_processor: BatchProcessor) -> None:
    seen: list[int] = []

    class Counting(AdaptiveBatcher):
        def observe(self, batch_size: int, *args: Any, **kw: Any) -> Decision:
            seen.append(batch_size)
            return super().observe(batch_size, *args, **kw)

    shown: list[tuple[int, float]] = []
    batcher = Counting(50.0, 1, 64, 0.001, 0.05)
    initial = batcher.limits()
    feedback = AdaptiveFeedback(batcher, lambda size, wait: shown.append((size, wait)), "news")
    log: list[str] = []
    batches = [[record(o) for o in range(i, i + 2)] for i in range(0, 10, 2)]
    await loop(batch_processor, log, [], feedback=feedback).run(Batches(batches, log))
    assert seen == [2] * 5
    # Shown at the start and after each change: the last shown is what the batcher holds.
    assert shown[0] == initial and shown[-1] == batcher.limits()

