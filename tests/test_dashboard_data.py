"""The dashboard's data: recent alerts (filled by the atomic claim in Redis, newest first),
throughput, dead letters and lag, and latency over the recent window and since start."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import redis.asyncio as aioredis
from alert_support import NOW, alert_settings, claim, record

from streamer.aggregate import TrendStore
from streamer.aggregate.summary import TopicAccount
from streamer.alert.store import RECENT_EVIDENCE, AlertStore
from streamer.dashboard import (
    RateTracker,
    alerts_data,
    latency_data,
    throughput_data,
    trends_data,
)
from streamer.latency import LatencyRecorder
from streamer.metrics import Metrics
from streamer.schemas import Stamps
from streamer.schemas.alerts import Evidence


def with_evidence(i: int, n: int) -> Evidence:
    return Evidence(event_id=f"e{i}-{n}", event_time=NOW + timedelta(seconds=n), source="wire",
                    kind="news", snippet=f"Crude slides {n}", negative_prob=0.9)


async def test_claimed_alerts_show_newest_first_once_each_with_short_evidence(
    redis_url: str,
) -> None:
    settings = alert_settings(redis_url)
    trends = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        store = AlertStore(trends.redis, settings.redis.key_prefix,
                           claim_ttl_s=settings.alerts.claim_ttl_s)
        first = record(0).model_copy(update={"evidence": [with_evidence(0, n)
                                                          for n in range(10)]})
        await claim(store, [first], webhook=False)
        await claim(store, [record(1, key="CVX"), record(1, key="CVX", kind="resolved")],
                    webhook=False)
        # a repeat of an already claimed alert is refused, so it is not listed twice
        cursor = await store.cursor()
        again = await store.commit(expected_cursor=cursor, cursor=(cursor or 0) + 10, origin=0,
                                   changed={}, removed=[], alerts=[first], webhook=False,
                                   webhook_max_pending=10)
        assert again.committed and not again.claimed

        recent = await store.recent()
        assert [(r.key, r.kind) for r in recent] == [("CVX", "resolved"), ("CVX", "fired"),
                                                      ("XOM", "fired")]
        assert len(recent[-1].evidence) == RECENT_EVIDENCE
        rows = (await alerts_data(store, limit=2))["alerts"]
        assert len(rows) == 2 and rows[0]["kind"] == "resolved"
        assert rows[1]["message"].startswith("negative spike: 12 of 20 messages negative")
        assert "baseline 10%" in rows[1]["message"]
        empty = await trends_data(trends, bucket_seconds=settings.aggregate.bucket_seconds)
        assert empty["topics"] == [] and empty["end"] is None  # nothing aggregated yet
    finally:
        await trends.close()


def account(topic: str, consumed: int, dead: int) -> TopicAccount:
    return TopicAccount(topic=topic, partitions=4, consumed=consumed, scored=consumed - dead,
                        dead_lettered=dead)


def test_throughput_is_a_rate_over_the_window_from_the_exact_counts() -> None:
    tracker = RateTracker(window_s=30.0)
    metrics = Metrics()
    first = throughput_data([account("news", 100, 2)], tracker, 1_000.0, metrics.dead,
                            metrics.consumer_lag)
    assert first["rate_window_s"] is None and first["topics"][0]["consumed_per_s"] is None
    throughput_data([account("news", 400, 5)], tracker, 1_010.0, metrics.dead,
                    metrics.consumer_lag)
    data = throughput_data([account("news", 1_000, 8)], tracker, 1_040.0, metrics.dead,
                           metrics.consumer_lag)
    news = data["topics"][0]
    # the newest sample at least 30 s older is the one at 1010: (1000-400)/30 s
    assert data["rate_window_s"] == 30.0
    assert news["consumed_per_s"] == 20.0 and news["dead_per_s"] == 0.1
    assert news["consumed"] == 1_000 and news["dead_share"] == 0.008
    assert [round(p["consumed_per_s"]) for p in data["series"]] == [30, 20]


def test_dead_letters_by_reason_and_lag_per_partition_come_from_the_workers_metrics() -> None:
    metrics = Metrics()
    metrics.dead.labels("news", "invalid_json").inc(3)
    metrics.dead.labels("chat", "validation_failed").inc(5)
    metrics.consumer_lag.labels("news", "1").set(40)
    metrics.consumer_lag.labels("news", "0").set(2)
    data = throughput_data([], RateTracker(30.0), 1.0, metrics.dead, metrics.consumer_lag)
    assert data["dead_by_reason"] == [
        {"topic": "chat", "reason": "validation_failed", "count": 5},
        {"topic": "news", "reason": "invalid_json", "count": 3}]
    assert data["lag"] == {"total": 42, "partitions": [
        {"topic": "news", "partition": 0, "lag": 2}, {"topic": "news", "partition": 1, "lag": 40}]}


async def test_latency_data_has_the_recent_window_beside_the_totals(redis_url: str) -> None:
    prefix = f"dash{uuid.uuid4().hex[:8]}"
    now = time.time()
    rec = LatencyRecorder(slice_s=10)
    for at, n in ((now - 900, 3), (now, 2)):
        t = at * 1000.0
        rec.record([Stamps(produced=t - 9, requested=t - 7, consumed=t - 6, batched=t - 5,
                           tokenized=t - 4, inferred=t - 2, aggregated=t)] * n)
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        await client.hset(f"{prefix}:latency:w1", mapping=rec.encode())
        await client.hset(f"{prefix}:latency-slices:w1",
                          mapping=rec.take_slices())
        data = await latency_data(client, prefix, window_s=300)
    finally:
        await client.aclose()
    assert data["end_to_end"]["count"] == 5 and data["view"] == "since each worker started"
    assert data["recent"]["end_to_end"]["count"] == 2 and data["recent"]["view"] == "last 5 min"
    assert [s["stage"] for s in data["recent"]["stages"]][:2] == ["queue", "kafka"]
