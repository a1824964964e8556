"""The detector against a real Redis: watermark, windows, evidence, the atomic claim."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest
from alert_support import (
    FakeClock,
    SettingsStore,
    alert_settings,
    apply,
    batches,
    bucket_counts,
    drive,
    engine,
    make_events,
)

from streamer.aggregate import TrendStore
from streamer.cli.alerts_cmd import _keep, _trend_rows, render_alert
from streamer.detect.core import Detector
from streamer.schemas.alerts import AlertRecord
from streamer.schemas.export import export_schemas
from streamer.settings import Settings


@pytest.fixture
async def trends(redis_url: str) -> AsyncIterator[TrendStore]:
    store = SettingsStore.of(alert_settings(redis_url))
    yield store
    await store.close()


def offline_ids(settings: Settings, events: list, upto: int) -> list[str]:
    counts = bucket_counts(events, settings.aggregate.bucket_seconds)
    det = Detector(settings.alerts.detector(settings.aggregate.bucket_seconds))
    ids = []
    for b in range(min(counts), upto + 1, settings.aggregate.bucket_seconds):
        ids += [d.alert_id for d in det.step(b, counts.get(b, {}))]
    return ids


async def test_watermark_is_the_slowest_moving_partition_less_the_lateness(
    trends: TrendStore,
) -> None:
    events = make_events(1, 5, partitions=2)
    clock = FakeClock()
    eng = engine(trends, clock=clock, partitions=3)  # news:2 never reports
    p0 = [e for e in events if e.origin.partition == 0]
    p1 = [e for e in events if e.origin.partition == 1]
    await eng.observe(p0)
    await eng.observe(p1[: len(p1) // 2])
    assert await eng.events.watermark_ms(clock()) is None  # waiting for news:2
    clock.ms += trends.s.alerts.idle_partition_s * 1000 / 2
    await eng.observe(p0)
    await eng.observe(p1[: len(p1) // 2])
    clock.ms += trends.s.alerts.idle_partition_s * 1000 / 2 + 1
    lateness = trends.s.alerts.allowed_lateness_s * 1000
    slow = p1[len(p1) // 2 - 1].event_time.timestamp() * 1000
    assert await eng.events.watermark_ms(clock()) == pytest.approx(slow - lateness)
    # Partition 1 stops moving; after the idle time it no longer holds the watermark.
    clock.ms += trends.s.alerts.idle_partition_s * 1000 + 1
    await eng.observe(p1[len(p1) // 2:])  # partition 1 moves on; partition 0 is idle
    newest1 = p1[-1].event_time.timestamp() * 1000
    assert await eng.events.watermark_ms(clock()) == pytest.approx(newest1 - lateness)
    clock.ms += trends.s.alerts.idle_partition_s * 1000 + 1
    newest = max(e.event_time.timestamp() * 1000 for e in events)
    # Everything idle: the newest time wins.
    assert await eng.events.watermark_ms(clock()) == pytest.approx(newest - lateness)


async def test_closed_bucket_reads_merge_partitions(trends: TrendStore) -> None:
    events = make_events(2, 3, partitions=3)
    await apply(trends, events)
    eng = engine(trends)
    expected = bucket_counts(events)
    starts = sorted(expected)
    got = await eng.events.read_buckets(starts)
    for b in starts:
        assert {k: v for k, v in got[b].items() if v[0]} == expected[b]


async def test_alerts_match_the_offline_detector_and_do_not_depend_on_batching(
    redis_url: str, tmp_path: Path
) -> None:
    events = make_events(3, 30, spike_at_min=20, spike_per_min=60, partitions=3)
    schema = json.loads(next(p for p in export_schemas(tmp_path)
                             if p.name == "alert.schema.json").read_text())
    runs = []
    for seed, size in ((1, 5), (2, 200)):  # "slow" and "fast" replays
        store = SettingsStore.of(alert_settings(redis_url))
        try:
            eng = engine(store)
            alerts = await drive(eng, store, batches(events, seed, size))
            cursor = await eng.store.cursor()
        finally:
            await store.close()
        assert cursor is not None
        runs.append(([a.alert_id for a in alerts], cursor, alerts))
    (ids_a, cur_a, alerts), (ids_b, cur_b, _) = runs
    assert cur_a == cur_b
    assert ids_a == ids_b == offline_ids(alert_settings(redis_url), events, cur_a)
    fired = [a for a in alerts if a.kind == "fired" and a.scope == "ticker"]
    assert fired, ids_a
    rec = fired[0]
    jsonschema.validate(json.loads(rec.model_dump_json()), schema)
    assert rec.key == "XOM" and rec.evidence
    assert all(e.snippet.startswith("Crude slumps") for e in rec.evidence)
    # Why it fired, for a person: the window that decided and the test.
    assert rec.window_s is not None and rec.window_s <= 60
    assert rec.why is not None and "z " in rec.why and f"{rec.negatives} of" in rec.why
    spike_start = events[0].event_time.replace(minute=20, second=0).timestamp()
    assert rec.first_event_time is not None
    assert rec.first_event_time.timestamp() >= spike_start - 60
    # The first spike event's record timestamp rides along, for the alert latency.
    first = min((e for e in events if e.sentiment.label == "negative"
                 and e.event_time.timestamp() * 1000 == rec.first_event_time.timestamp() * 1000),
                key=lambda e: e.id, default=None)
    assert first is not None and first.stamps.produced is not None
    assert rec.first_event_produced_at is not None
    assert rec.first_event_produced_at.timestamp() * 1000 == pytest.approx(first.stamps.produced)
    assert rec.detection_delay_ms is not None and 0 < rec.detection_delay_ms < 60_000


async def test_an_alert_on_a_topic_named_with_spaces_and_bars_carries_that_name(
    trends: TrendStore, tmp_path: Path
) -> None:
    """"Energy | Oil" is the alert's key exactly (and its Kafka key's); the ids carry it
    percent-encoded, so they stay safe identifiers; state and evidence read it back."""
    name = "Energy | Oil"
    events = make_events(6, 30, spike_at_min=20, spike_per_min=80, partitions=2, label=name)
    eng = engine(trends, partitions=2)
    alerts = await drive(eng, trends, batches(events, 3, 60))
    rec = next(a for a in alerts if a.kind == "fired" and a.scope == "topic")
    assert rec.key == name and rec.kafka_key == b"topic:Energy | Oil"
    assert rec.episode_id == f"topic:Energy%20%7C%20Oil:{rec.alert_id.split(':')[2]}"
    assert rec.alert_id == f"{rec.episode_id}:fired"
    assert rec.evidence and all(e.snippet.startswith("Crude slumps") for e in rec.evidence)
    schema = json.loads(next(p for p in export_schemas(tmp_path)
                             if p.name == "alert.schema.json").read_text())
    jsonschema.validate(json.loads(rec.model_dump_json()), schema)
    assert AlertRecord.model_validate_json(rec.model_dump_json()) == rec
    assert ("topic", name) in (await eng.store.snapshot()).states
    assert await eng.store.claim_status(rec.alert_id) == "pending"
    assert rec.alert_id in [a.alert_id for a in await eng.store.recent()]
    # `streamer alerts --scope topic --key "energy | oil"` finds it and prints the name.
    assert _keep(rec, "warning", "topic", "energy | oil") and name in render_alert(rec).plain


async def test_two_concurrent_workers_never_emit_the_same_alert_twice(
    redis_url: str,
) -> None:
    events = make_events(4, 30, spike_at_min=20, spike_per_min=80, partitions=2)
    settings = alert_settings(redis_url)
    stores = [SettingsStore.of(settings) for _ in range(2)]
    try:
        engines = [engine(s, f"w{i}", partitions=2) for i, s in enumerate(stores)]
        claimed: list[AlertRecord] = []
        for batch in batches(events, 9, 40):
            await apply(stores[0], batch)
            await engines[0].observe(batch)
            for _ in range(3):  # both race for the same closed buckets
                results = await asyncio.gather(*(e.evaluate() for e in engines))
                claimed += [a for r in results for a in r.alerts]
        cursor = await engines[0].store.cursor()
        outbox = await engines[0].store.pending("kafka", limit=1000)
        conflicts = sum(e.metrics.conflicts._value.get() for e in engines)
    finally:
        for s in stores:
            await s.close()
    ids = [a.alert_id for a in claimed]
    assert len(ids) == len(set(ids))
    assert cursor is not None
    assert sorted(ids) == sorted(offline_ids(settings, events, cursor))
    assert [a.alert_id for a in outbox] == ids  # outbox in claim order
    assert {a.worker for a in claimed} <= {"w0", "w1"}
    assert conflicts > 0  # they really raced


async def test_a_claimed_alert_id_is_refused_a_second_time(trends: TrendStore) -> None:
    events = make_events(5, 30, spike_at_min=20, spike_per_min=80)
    eng = engine(trends, partitions=2)
    alerts = await drive(eng, trends, batches(events, 1, 100))
    assert alerts
    snap = await eng.store.snapshot()
    assert snap.cursor is not None and snap.origin is not None
    again = await eng.store.commit(
        expected_cursor=snap.cursor, cursor=snap.cursor, origin=snap.origin, changed={},
        removed=[], alerts=alerts[:1], webhook=False, webhook_max_pending=10,
    )
    assert again.committed and again.claimed == ()
    assert await eng.store.claim_status(alerts[0].alert_id) == "pending"
    await eng.store.delivered("kafka", alerts[0].alert_id)
    assert await eng.store.claim_status(alerts[0].alert_id) == "delivered"
    pending = [a.alert_id for a in await eng.store.pending("kafka")]
    assert alerts[0].alert_id not in pending
    # A stale cursor (another worker moved on) is refused as a whole.
    stale = await eng.store.commit(
        expected_cursor=snap.cursor - 10, cursor=snap.cursor, origin=snap.origin,
        changed={}, removed=[], alerts=[], webhook=False, webhook_max_pending=10,
    )
    assert not stale.committed


async def test_a_worker_restarting_mid_stream_continues_from_the_shared_state(
    redis_url: str,
) -> None:
    events = make_events(6, 30, spike_at_min=20, spike_per_min=80, partitions=2)
    settings = alert_settings(redis_url)
    plan = batches(events, 3, 50)
    store = SettingsStore.of(settings)
    try:
        first = await drive(engine(store, "before", partitions=2), store, plan[: len(plan) // 2])
        second = await drive(engine(store, "after", partitions=2), store, plan[len(plan) // 2:])
        cursor = await engine(store, partitions=2).store.cursor()
    finally:
        await store.close()
    assert cursor is not None
    assert [a.alert_id for a in first + second] == offline_ids(settings, events, cursor)


async def _script_exists_calls(store: TrendStore) -> int:
    stats = await store.redis.info("commandstats")
    return int(stats.get("cmdstat_script|exists", {}).get("calls", 0))


async def test_recording_a_batch_takes_one_round_trip(trends: TrendStore) -> None:
    eng = engine(trends)
    events = make_events(2, 2)
    await eng.observe(events[:5])  # the first call may load the script
    before = await _script_exists_calls(trends)
    for i in range(5, 30, 5):
        await eng.observe(events[i:i + 5])
    # no SCRIPT EXISTS before each pipeline (redis-py's Script-on-a-pipeline behaviour)
    assert await _script_exists_calls(trends) == before


async def test_recording_survives_redis_losing_its_scripts(trends: TrendStore) -> None:
    clock = FakeClock()
    eng = engine(trends, clock=clock, partitions=1)
    events = make_events(3, 2, partitions=1)
    await eng.observe(events[:10])
    await trends.redis.script_flush()
    await eng.observe(events[10:])
    clock.ms += trends.s.alerts.idle_partition_s * 1000 + 1
    newest = max(e.event_time.timestamp() * 1000 for e in events)
    lateness = trends.s.alerts.allowed_lateness_s * 1000
    # the progress the flushed script was to record got recorded
    assert await eng.events.watermark_ms(clock()) == pytest.approx(newest - lateness)


async def _backfill_alerts(redis_url: str, **overrides: object) -> tuple[list[str], list[str]]:
    """Ninety minutes of news (a spike at minute 20) written to Redis before a fresh
    worker's detector first runs, as a full-speed backfill does: its alert ids, and the
    offline detector's over the whole stream."""
    settings = alert_settings(redis_url, **overrides)
    events = make_events(4, 90, spike_at_min=20, spike_per_min=60, partitions=3)
    store = SettingsStore.of(settings)
    try:
        await apply(store, events)
        eng = engine(store)
        await eng.observe(events)
        alerts = []
        while (ev := await eng.evaluate()).alerts or ev.behind:
            alerts += ev.alerts
        cursor = await eng.store.cursor()
    finally:
        await store.close()
    assert cursor is not None
    return [a.alert_id for a in alerts], offline_ids(settings, events, cursor)


async def test_a_backfill_into_a_fresh_worker_is_judged_from_its_first_story(
    redis_url: str,
) -> None:
    ids, offline = await _backfill_alerts(redis_url)
    assert ids == offline
    assert any(i.startswith("ticker:XOM:") for i in ids), ids


async def test_a_bootstrap_bound_leaves_older_buckets_unjudged(redis_url: str) -> None:
    ids, offline = await _backfill_alerts(redis_url, alert_bootstrap_s=1_800)
    # The spike at minute 20 is more than 30 min before the watermark.
    assert not any(i.startswith("ticker:XOM:") for i in ids), ids
    assert any(i.startswith("ticker:XOM:") for i in offline)


async def test_the_trends_table_shows_each_keys_long_window_and_the_z_it_needs(
    redis_url: str,
) -> None:
    settings = alert_settings(redis_url)
    events = make_events(5, 30, spike_at_min=20, spike_per_min=60, partitions=2)
    store = SettingsStore.of(settings)
    try:
        await drive(engine(store, partitions=2), store, batches(events, 5, 200))
    finally:
        await store.close()
    rows, _ = await _trend_rows(settings, "ticker", "XOM", 3_600, 5, 20)
    assert len(rows) == 1
    assert re.fullmatch(r"(15 min|1 h|6 h): \d+/\d+, z -?\d+\.\d \(needs \d\.\d\)", rows[0][6])
