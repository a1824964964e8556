"""Event times far from the stream's: a future one is dead-lettered before it can move the
watermark; an old one is kept (backfills) and drags no read through the empty years."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from alert_support import (
    T0,
    FakeClock,
    SettingsStore,
    alert_settings,
    apply,
    batches,
    drive,
    engine,
    make_events,
)
from batch_support import KeywordScorer

from streamer.aggregate import TrendStore
from streamer.aggregate.summary import trends
from streamer.alert.engine import AlertEngine
from streamer.batch.processor import BatchProcessor, RawRecord
from streamer.dashboard import trends_data
from streamer.detect.core import Decision, Detector, DetectorParams, ScopeKey
from streamer.schemas import ScoredEvent
from streamer.schemas.alerts import AlertRecord
from streamer.score.pool import ScoringPool

REUTERS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "reuters-stream"
OLD = datetime(1987, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[TrendStore]:
    s = SettingsStore.of(alert_settings(redis_url))
    yield s
    await s.close()


def news(i: int, when: datetime, headline: str = "Crude slumps on supply glut") -> bytes:
    return orjson.dumps({"schema_version": 1, "id": f"n{i}", "source": "wire",
                         "headline": headline, "published_at": when.isoformat()})


def shifted(events: list[ScoredEvent], by: timedelta) -> list[ScoredEvent]:
    return [e.model_copy(update={"event_time": e.event_time + by}) for e in events]


async def reads(store: TrendStore) -> int:
    """Bucket hashes read so far (HGETALL + HMGET calls), from Redis's own statistics."""
    stats = await store.redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("hgetall", "hmget"))


# --- the future ------------------------------------------------------------------------------
async def test_a_future_event_is_dead_lettered_and_a_later_spike_still_alerts(
    store: TrendStore,
) -> None:
    pool = ScoringPool(KeywordScorer(), threads=1, queue_depth=0)
    proc = BatchProcessor(store.s.input, store.s.topics, pool, store)
    far = datetime(2099, 1, 1, tzinfo=UTC)
    out = await proc.score([RawRecord("news", 3, 0, news(0, far))])
    assert [(d.reason, d.offset) for d in out.dead] == [("event_time_future", 0)]
    assert "2099" in out.dead[0].error and "STREAMER_MAX_FUTURE_SKEW_S" in out.dead[0].error
    await proc.aggregate(out)
    clock = FakeClock()
    eng = engine(store, clock=clock)
    await eng.observe(out.scored)
    assert await store.redis.hgetall(eng.events.progress_key) == {}  # no progress to 2099

    # The live stream then alerts on its spike, and the trends show its window.
    events = make_events(3, 30, spike_at_min=20, spike_per_min=60, partitions=3)
    alerts = await drive(eng, store, batches(events, 1, 50))
    assert any(a.kind == "fired" and a.key == "XOM" for a in alerts), [a.alert_id for a in alerts]
    data = await trends_data(store, bucket_seconds=store.s.aggregate.bucket_seconds)
    assert data["end"] == int(events[-1].event_time.timestamp()) // 10 * 10 + 10


async def test_an_event_within_the_allowed_skew_is_kept(store: TrendStore) -> None:
    pool = ScoringPool(KeywordScorer(), threads=1, queue_depth=0)
    proc = BatchProcessor(store.s.input, store.s.topics, pool, store)
    soon = datetime.now(UTC) + timedelta(seconds=store.s.input.max_future_skew_s / 2)
    out = await proc.score([RawRecord("news", 0, 0, news(0, soon))])
    assert not out.dead and [e.event_time for e in out.scored] == [soon]


# --- the past: bounded reads -----------------------------------------------------------------
@pytest.mark.parametrize("old", [T0 - timedelta(days=30), OLD], ids=["30-days-old", "1987"])
async def test_summary_and_trends_read_only_the_buckets_redis_holds(
    store: TrendStore, old: datetime
) -> None:
    events = make_events(4, 10, partitions=3)  # the live stream, from T0
    stray = shifted(events[:1], old - events[0].event_time)
    stray[0] = stray[0].model_copy(update={"origin": events[-1].origin.model_copy(
        update={"offset": 10_000})})
    await apply(store, events)
    await apply(store, stray)
    stored = len([k async for k in store.redis.scan_iter(f"{store.keys.prefix}:{{*}}:b:*")])
    before = await reads(store)
    rows = await trends(store)
    tags = len(await store.partitions())  # time_range reads each partition's counters
    assert await reads(store) - before <= stored + tags  # not one per empty bucket since `old`
    total = next(r for r in rows if r.scope == "topic" and r.key == "Energy | Oil").messages
    assert total == len(events) + 1  # everything still in Redis, the stray event included

    before = await reads(store)
    data = await trends_data(store, bucket_seconds=store.s.aggregate.bucket_seconds, window_s=3600)
    assert await reads(store) - before <= 3600 // 10 * tags + tags  # the window only
    newest = int(events[-1].event_time.timestamp()) // 10 * 10
    assert data["end"] == newest + 10 and data["end"] - data["start"] <= 3600


# --- the past: the detector's walk -----------------------------------------------------------
class CountingDetector(Detector):
    """Counts the buckets it evaluates one by one."""

    evaluated: int = 0

    def _step_one(self, bucket: int, counts: Mapping[ScopeKey, tuple[int, int]]
                  ) -> list[Decision]:
        self.evaluated += 1
        return super()._step_one(bucket, counts)


def test_the_detector_jumps_over_an_empty_stretch() -> None:
    p = DetectorParams()
    det = CountingDetector(p)
    busy = [(b, {("all", "all"): (3, 1), ("ticker", "XOM"): (3, 1)}) for b in range(0, 600, 10)]
    for b, counts in busy:
        det.step(b, counts)
    assert det.evaluated == len(busy)
    det.step(10 * 100_000, {("all", "all"): (3, 1), ("ticker", "XOM"): (3, 1)})
    # Only while a key's window still holds messages (or an episode is open) is an empty
    # bucket evaluated; the rest of the 100,000 empty buckets are jumped in closed form.
    assert det.evaluated - len(busy) <= p.buckets + p.resolve_s // p.bucket_s + 2


def test_jumping_gives_the_same_decisions_as_stepping_every_bucket() -> None:
    p = DetectorParams(warmup_s=60)
    quiet = {("all", "all"): (10, 1), ("ticker", "XOM"): (10, 1)}
    spike = {("all", "all"): (20, 18), ("ticker", "XOM"): (20, 18)}
    plan = [*[(b, quiet) for b in range(0, 1200, 10)], (50_000, quiet), (50_010, spike),
            *[(b, quiet) for b in range(50_020, 51_000, 10)]]
    a, b = Detector(p), Detector(p)
    got = [d.alert_id for t, c in plan for d in a.step(t, c)]
    every: list[str] = []
    for t in range(0, 51_000, 10):
        every += [d.alert_id for d in b.step(t, dict(plan).get(t, {}))]
    assert got == every and any(x.endswith(":fired") for x in got)
    assert a.states == b.states


async def _catch_up(eng: AlertEngine, store: TrendStore, batch: list[ScoredEvent],
                    max_calls: int) -> tuple[list[AlertRecord], int]:
    await apply(store, batch)
    await eng.observe(batch)
    out: list[AlertRecord] = []
    for calls in range(1, max_calls + 1):
        ev = await eng.evaluate()
        out += ev.alerts
        if not ev.behind:
            return out, calls
    raise AssertionError(f"still behind after {max_calls} evaluations (cursor {ev.cursor})")


async def test_the_engine_crosses_years_of_empty_buckets_in_a_few_calls(
    store: TrendStore,
) -> None:
    clock = FakeClock()
    eng = engine(store, clock=clock)
    live = make_events(5, 30, spike_at_min=20, spike_per_min=60, partitions=3)
    backfill = shifted(make_events(6, 5, partitions=3), OLD - live[0].event_time)
    await _catch_up(eng, store, backfill, 20)
    cursor = await eng.store.cursor()
    assert cursor is not None and cursor < OLD.timestamp() + 600
    # The live stream continues each partition's offsets.
    live = [e.model_copy(update={"origin": e.origin.model_copy(
        update={"offset": e.origin.offset + 10_000})}) for e in live]
    alerts, _ = await _catch_up(eng, store, live, 20)  # 60 buckets a call at most
    assert (await eng.store.cursor() or 0) >= int(live[-1].event_time.timestamp()) - 60
    assert any(a.kind == "fired" and a.key == "XOM" for a in alerts)


# --- backfill ----------------------------------------------------------------------------------
async def test_a_backfill_in_1987_gives_the_alerts_the_same_stream_gives_now(
    redis_url: str,
) -> None:
    settings = alert_settings(redis_url)
    # Old event times are not rejected: the shipped Reuters 1987 stream passes decoding.
    lines = next(REUTERS.glob("*.jsonl")).read_bytes().splitlines()[:200]
    store = SettingsStore.of(settings)
    try:
        pool = ScoringPool(KeywordScorer(), threads=1, queue_depth=0)
        proc = BatchProcessor(settings.input, settings.topics, pool, store)
        out = await proc.score([RawRecord("news", 0, i, raw) for i, raw in enumerate(lines)])
        assert not [d for d in out.dead if d.reason == "event_time_future"]
        assert out.scored and all(e.event_time.year == 1987 for e in out.scored)
    finally:
        await store.close()

    now = make_events(7, 30, spike_at_min=20, spike_per_min=60, partitions=3)
    shift = OLD - T0  # whole days: the same bucket alignment
    runs = []
    for events in (now, shifted(now, shift)):
        store = SettingsStore.of(alert_settings(redis_url))
        try:
            alerts = await drive(engine(store), store, batches(events, 2, 40))
        finally:
            await store.close()
        runs.append(alerts)
    live, old = runs
    assert any(a.kind == "fired" for a in live)
    s = int(shift.total_seconds())

    def seen(a: AlertRecord, by: int = 0) -> tuple[object, ...]:
        episode = int(a.episode_id.rsplit(":", 1)[1]) + by
        return (a.kind, a.scope, a.key, episode, a.severity, a.z, a.messages, a.negatives,
                a.window_start.timestamp() + by, a.detected_event_time.timestamp() + by)

    assert [seen(a, s) for a in live] == [seen(a) for a in old]
