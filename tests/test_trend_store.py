"""The Redis trend store against a real Redis: exactly-once application and window reads."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError
from rich.console import Console

from streamer.aggregate import TrendStore, build_deltas
from streamer.aggregate.store import refusal
from streamer.aggregate.summary import accounts, trends
from streamer.cli.summary_cmd import trends_table
from streamer.dashboard import trends_data
from streamer.schemas import Origin, Prediction, ScoredEvent, Stamps
from streamer.settings import Settings

T0 = datetime(2026, 1, 2, 3, 4, 0, tzinfo=UTC)


def scored(offset: int, label: str, topic_label: str = "Earnings", tickers: list[str] | None = None,
           second: int = 0, partition: int = 0) -> ScoredEvent:
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1, label: 0.8}
    return ScoredEvent(
        id=f"e{partition}-{offset}", kind="news", source="wire", snippet="x",
        tickers=tickers or [], event_time=T0.replace(second=second),
        sentiment=Prediction(label=label, probs=probs),
        topic=Prediction(label=topic_label, probs={topic_label: 1.0}),
        scorer="test", origin=Origin(topic="news", partition=partition, offset=offset),
        stamps=Stamps(),
    )


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[TrendStore]:
    settings = Settings(_env_file=None, REDIS_URL=redis_url,
                        redis_key_prefix=f"t{uuid.uuid4().hex[:8]}", bucket_seconds=10)
    s = TrendStore.connect(settings.redis, settings.aggregate)
    yield s
    await s.close()


async def test_a_batch_is_applied_once_and_its_replay_is_skipped(store: TrendStore) -> None:
    events = [scored(o, "negative", tickers=["XOM"]) for o in range(5)]
    (delta,) = build_deltas(events, [("news", 0, 5)], 10).values()
    assert (await store.apply(delta)).status == "applied"
    assert (await store.apply(delta)).status == "duplicate"
    (acc,) = await accounts(store)
    assert (acc.consumed, acc.scored, acc.dead_lettered) == (6, 5, 1)
    rows = {(r.scope, r.key): r for r in await trends(store)}
    assert rows[("ticker", "XOM")].counts == {"negative": 5}
    assert rows[("topic", "Earnings")].messages == 5


async def test_a_replay_straddling_the_watermark_is_reported_partial(store: TrendStore) -> None:
    (first,) = build_deltas([scored(o, "positive") for o in range(0, 4)], [], 10).values()
    (overlap,) = build_deltas([scored(o, "positive") for o in range(2, 8)], [], 10).values()
    await store.apply(first)
    result = await store.apply(overlap)
    assert (result.status, result.watermark) == ("partial", 3)
    (acc,) = await accounts(store)
    assert acc.consumed == 4  # nothing of the overlapping batch was applied


async def test_partitions_are_kept_apart_and_merged_on_read(store: TrendStore) -> None:
    for p in (0, 1, 2):
        evs = [scored(o, "negative", partition=p, second=o) for o in range(3)]
        (delta,) = build_deltas(evs, [], 10).values()
        await store.apply(delta)
    (acc,) = await accounts(store)
    assert (acc.partitions, acc.consumed) == (3, 9)
    window = await store.window_all(T0.timestamp(), T0.timestamp() + 9, scopes=["all"])
    assert window[("all", "all")].counts == {"negative": 9}


async def test_windows_sum_only_their_buckets(store: TrendStore) -> None:
    evs = [scored(0, "negative", second=1), scored(1, "positive", second=15),
           scored(2, "positive", second=25)]
    (delta,) = build_deltas(evs, [], 10).values()
    await store.apply(delta)
    start = T0.timestamp()
    w = await store.window_all(start + 10, start + 19, scopes=["all"])
    assert w[("all", "all")].counts == {"positive": 1}
    series = await store.series("all", "all", start, start + 29, ["negative", "positive"])
    assert [wc.total for _, wc in series] == [1, 1, 1]


async def test_a_topic_named_with_spaces_and_bars_is_read_back_exactly(store: TrendStore) -> None:
    """A TFN topic name reaches Redis percent-encoded (inside the key alphabet) and comes
    back exactly as the model named it: trends, series, buckets, dashboard, CLI."""
    name = "Fed | Central Banks"
    events = [ScoredEvent.model_validate_json(  # as it comes off the wire
        scored(o, "negative" if o < 3 else "neutral", topic_label=name, tickers=["BRK.B"],
               second=o).model_dump_json()) for o in range(5)]
    (delta,) = build_deltas(events, [], 10).values()
    await store.apply(delta)
    start = int(T0.timestamp())
    fields = await store.redis.hkeys(store.keys.bucket("news:0", start))
    assert "topic|Fed%20%7C%20Central%20Banks|n|negative" in fields
    assert not any(" " in f or f.count("|") != 3 for f in fields)

    rows = {(r.scope, r.key): r for r in await trends(store)}
    assert rows[("topic", name)].counts == {"negative": 3, "neutral": 2}
    assert rows[("ticker", "BRK.B")].messages == 5
    (_, wc), = await store.series("topic", name, start, start + 9, ["negative", "neutral"])
    assert wc.counts == {"negative": 3, "neutral": 2}
    assert set((await store.buckets(start, start + 9, ("topic",)))[start]) == {("topic", name)}
    data = await trends_data(store, bucket_seconds=10)
    assert [(r["key"], r["messages"], r["negative"]) for r in data["topics"]] == [(name, 5, 3)]
    console = Console(record=True, width=160)
    console.print(trends_table(list(rows.values()), "topic", 0))
    assert name in console.export_text()


async def test_market_and_stream_trends_reach_the_summary_and_the_dashboard(
    store: TrendStore,
) -> None:
    events = [scored(o, "negative" if o < 3 else "neutral", second=o).model_copy(
        update={"markets": ["S&P 500", "Dow Jones"] if o < 4 else []}) for o in range(6)]
    (delta,) = build_deltas(events, [], 10).values()
    await store.apply(delta)
    rows = {(r.scope, r.key): r for r in await trends(store)}
    assert rows[("market", "S&P 500")].counts == {"negative": 3, "neutral": 1}
    assert rows[("stream", "news")].messages == 6
    data = await trends_data(store, bucket_seconds=10)
    assert [(r["key"], r["messages"]) for r in data["markets"]] == [("Dow Jones", 4),
                                                                     ("S&P 500", 4)]
    assert [(r["key"], r["messages"], r["negative"]) for r in data["streams"]] == [
        ("news", 6, 3)]
    console = Console(record=True, width=160)
    console.print(trends_table(list(rows.values()), "market", 0))
    assert "S&P 500" in console.export_text()


async def test_summary_json_gives_the_accounts_and_trends_a_script_can_compare(
    store: TrendStore, redis_url: str, tmp_path: Path,
) -> None:
    (delta,) = build_deltas([scored(o, "negative" if o < 2 else "neutral", tickers=["XOM"])
                             for o in range(5)], [], 10).values()
    await store.apply(delta)
    out = subprocess.run(
        [str(Path(sys.executable).with_name("streamer")), "summary", "--json"], cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url,
             "STREAMER_REDIS_KEY_PREFIX": store.keys.prefix},
        capture_output=True, text=True, timeout=120, check=True)
    report = orjson.loads(out.stdout)
    assert report["accounts"] == [{"topic": "news", "partitions": 1, "consumed": 5,
                                   "scored": 5, "dead_lettered": 0, "balanced": True}]
    xom = next(r for r in report["trends"] if (r["scope"], r["key"]) == ("ticker", "XOM"))
    assert xom["counts"] == {"negative": 2, "neutral": 3}


async def test_every_key_shares_its_partition_hash_tag(store: TrendStore) -> None:
    (delta,) = build_deltas([scored(0, "negative", tickers=["XOM"])], [], 10).values()
    await store.apply(delta)
    keys = [k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}:{{*")]
    assert keys and all("{news:0}" in k for k in keys)


async def test_buckets_expire(store: TrendStore) -> None:
    (delta,) = build_deltas([scored(0, "negative")], [], 10).values()
    await store.apply(delta)
    bucket = store.keys.bucket("news:0", int(T0.timestamp()))
    ttl = await store.redis.ttl(bucket)
    assert 0 < ttl <= 7_200


@pytest.mark.parametrize(("exc", "says"), [
    (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "out of memory"),
    (ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's currently "
                   "unable to persist to disk."), "cannot persist to disk"),
    (ReadOnlyError("You can't write against a read only replica."), "read-only"),
    (ResponseError("ERR something else"), "refused the update"),
])
def test_a_refused_write_says_what_it_means_and_what_to_do(exc: ResponseError, says: str) -> None:
    assert says in refusal(exc)
