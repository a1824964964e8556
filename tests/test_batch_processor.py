"""The batch processor alone, against a real Redis: replays and a poisoned batch."""

from __future__ import annotations

from batch_support import record

from streamer.aggregate.summary import accounts
from streamer.batch import BatchProcessor, RawRecord


async def run(proc: BatchProcessor, records: list[RawRecord]) -> tuple[int, int, int]:
    out = await proc.aggregate(await proc.score(records))
    return len(out.scored), len(out.dead), out.skipped


async def counted(proc: BatchProcessor) -> tuple[int, int, int]:
    (acc,) = await accounts(proc.store)
    return acc.consumed, acc.scored, acc.dead_lettered


async def test_a_replayed_batch_is_scored_again_but_counted_once(
        batch_processor: BatchProcessor) -> None:
    batch = [record(o) for o in range(4)]
    assert await run(batch_processor, batch) == (4, 0, 0)
    assert await run(batch_processor, batch) == (4, 0, 4)
    assert await counted(batch_processor) == (4, 4, 0)


async def test_a_replay_straddling_the_watermark_counts_only_the_offsets_above_it(
        batch_processor: BatchProcessor) -> None:
    await run(batch_processor, [record(o) for o in range(4)])
    assert await run(batch_processor, [record(o) for o in range(2, 8)]) == (6, 0, 2)
    assert await counted(batch_processor) == (8, 8, 0)
    assert batch_processor.metrics.duplicates.labels("news")._value.get() == 2


async def test_a_text_the_scorer_cannot_take_is_dead_lettered_and_the_rest_scored(
        batch_processor: BatchProcessor) -> None:
    batch = [record(o) for o in range(5)]
    batch[2] = record(2, "POISON pill headline")
    out = await batch_processor.score(batch)
    assert [e.origin.offset for e in out.scored] == [0, 1, 3, 4]
    assert [(d.offset, d.reason) for d in out.dead] == [(2, "scoring_failed")]
    await batch_processor.aggregate(out)
    assert await counted(batch_processor) == (5, 4, 1)


async def test_a_batch_of_poison_is_dead_lettered_whole_and_the_next_batch_flows(
        batch_processor: BatchProcessor) -> None:
    assert await run(batch_processor, [record(o, "poison") for o in range(3)]) == (0, 3, 0)
    assert await run(batch_processor, [record(o) for o in range(3, 6)]) == (3, 0, 0)
    assert await counted(batch_processor) == (6, 3, 3)

