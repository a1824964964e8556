"""Upstream repeats: a feed that sends the same story (event id) again within the window
does not inflate the trends; the repeat is dead-lettered as ``duplicate_id``, and the
decision for an offset is the same on every replay of it (exactly once, like the rest).
Against a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from alert_support import SettingsStore, alert_settings
from batch_support import KeywordScorer

from streamer.aggregate import TrendStore
from streamer.batch.processor import BatchOutput, BatchProcessor, RawRecord
from streamer.score.pool import ScoringPool
from streamer.settings import Settings

TOPIC = "news"


def news(event_id: str, headline: str = "Crude slumps on supply glut") -> bytes:
    return orjson.dumps({"schema_version": 1, "id": event_id, "source": "wire",
                         "headline": headline, "published_at": "2026-01-02T09:00:00Z"})


@pytest.fixture
async def settings(redis_url: str) -> Settings:
    return alert_settings(redis_url)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[TrendStore]:
    s = SettingsStore.of(settings)
    yield s
    await s.close()


async def run(store: TrendStore, records: list[RawRecord]) -> BatchOutput:
    pool = ScoringPool(KeywordScorer(), threads=1, queue_depth=0)
    proc = BatchProcessor(store.s.input, store.s.topics, pool, store)
    return await proc.aggregate(await proc.score(records))


@pytest.fixture
async def window_10(settings: Settings) -> AsyncIterator[TrendStore]:
    s = SettingsStore.of(settings.replace(**{"dedup_window_messages": 10}))
    yield s
    await s.close()


def records(ids: list[str], partition: int = 0, first_offset: int = 0) -> list[RawRecord]:
    return [RawRecord(TOPIC, partition, first_offset + i, news(x)) for i, x in enumerate(ids)]


async def counted(store: TrendStore) -> int:
    rows = await store.window_all(0, 2**32, scopes=("all",))
    return sum(wc.total for wc in rows.values())


async def test_the_same_id_three_times_is_scored_and_counted_once(store: TrendStore) -> None:
    out = await run(store, records(["a", "b", "a", "c", "a"]))
    assert [e.id for e in out.scored] == ["a", "b", "c"]
    assert sorted((d.reason, d.offset) for d in out.dead) == [("duplicate_id", 2),
                                                              ("duplicate_id", 4)]
    assert "offset 0 of news[0]" in out.dead[0].error
    assert await counted(store) == 3
    (part,) = await store.partition_counts()
    assert (part.consumed, part.scored, part.dead) == (5, 3, 2)  # every offset accounted for


async def test_a_repeat_in_a_later_batch_is_caught_too(store: TrendStore) -> None:
    await run(store, records(["a", "b"]))
    out = await run(store, records(["c", "b"], first_offset=2))
    assert [e.id for e in out.scored] == ["c"]
    assert [(d.reason, d.offset) for d in out.dead] == [("duplicate_id", 3)]
    assert await counted(store) == 3


async def test_a_replay_gets_the_first_attempts_answers(store: TrendStore) -> None:
    batch = records(["a", "b", "a", "c"])
    first = await run(store, batch)
    again = await run(store, batch)  # a crash before the Kafka commit: the batch replays
    assert [e.id for e in again.scored] == [e.id for e in first.scored] == ["a", "b", "c"]
    assert [d.offset for d in again.dead] == [d.offset for d in first.dead] == [2]
    assert again.skipped == 4 and await counted(store) == 3
    # A replay that straddles the watermark, with new offsets after it.
    more = await run(store, [*batch[2:], *records(["d", "a"], first_offset=4)])
    assert [e.id for e in more.scored] == ["c", "d"]
    assert [d.offset for d in more.dead] == [2, 5]
    assert await counted(store) == 4


async def test_other_partitions_are_not_deduplicated_against_each_other(
    store: TrendStore,
) -> None:
    out = await run(store, [*records(["a"], partition=0), *records(["a"], partition=1)])
    assert len(out.scored) == 2 and not out.dead


async def test_a_repeat_beyond_the_window_counts_again_and_memory_stays_bounded(
    window_10: TrendStore,
) -> None:
    store = window_10
    ids = ["a", *[f"x{i}" for i in range(9)], "a", *[f"y{i}" for i in range(10)], "a"]
    out = await run(store, records(ids))
    # Offset 10 is 10 after offset 0: a repeat. Offset 21 is 21 after it: counted again.
    assert [d.offset for d in out.dead] == [10]
    assert [e.id for e in out.scored].count("a") == 2
    again = await run(store, records(ids))  # and a replay agrees
    assert [d.offset for d in again.dead] == [10]
    key = store.keys.seen_ids(f"{TOPIC}:0")
    assert await store.redis.zcard(key) <= 11  # the newest offset and the 10 before it
    assert 0 < await store.redis.ttl(key) <= store.s.aggregate.dedup_ttl_s


async def test_zero_turns_deduplication_off(settings: Settings) -> None:
    store = SettingsStore.of(settings.replace(**{"dedup_window_messages": 0}))
    try:
        out = await run(store, records(["a", "a"]))
        assert len(out.scored) == 2 and not out.dead
        assert not await store.redis.exists(store.keys.seen_ids(f"{TOPIC}:0"))
    finally:
        await store.close()
