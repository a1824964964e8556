"""The worker's /metrics: per-stage latency observed for every event, Redis retries counted."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from alert_support import alert_settings
from batch_support import KeywordScorer, record
from prometheus_client import CollectorRegistry
from servers import free_ports

from agents.runtime import Runtime
from streamer.aggregate import AggregateUnavailable, TrendStore
from streamer.aggregate.delta import PartitionDelta
from streamer.batch import RawRecord
from streamer.metrics import _LATENCY_BUCKETS_S, STAGE_NAMES, Metrics
from streamer.settings import Settings


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_every_stage_has_a_series_before_the_first_event() -> None:
    registry = Metrics().registry
    for stage in STAGE_NAMES:
        assert registry.get_sample_value("streamer_stage_seconds_count", {"stage": stage}) == 0


def test_the_buckets_resolve_1_ms_to_10_s() -> None:
    inside = [b for b in _LATENCY_BUCKETS_S if 0.001 <= b <= 10.0]
    assert inside[0] == 0.001 and inside[-1] == 10.0
    assert max(b / a for a, b in itertools.pairwise(inside)) < 1.7


async def test_the_worker_observes_each_stage_of_every_scored_event(redis_url: str) -> None:
    runtime = Runtime.build(alert_settings(redis_url), KeywordScorer())
    try:
        now_ms = time.time() * 1000.0
        records = [RawRecord("news", 0, r.offset, r.value, timestamp_ms=int(now_ms) - 40,
                             consumed_ms=now_ms - 30.0) for r in map(record, range(7))]
        out = await runtime.processor.aggregate(await runtime.processor.score(records))
        assert len(out.scored) == 7
        registry = runtime.metrics.registry
        for stage in STAGE_NAMES:
            assert sample(registry, "streamer_stage_seconds_count", stage=stage) == 7, stage
        # The Kafka hop was stamped 10 ms (produced -> consumed): the 0.01 s bucket holds it.
        assert sample(registry, "streamer_stage_seconds_bucket", stage="kafka", le="0.0075") == 0
        assert sample(registry, "streamer_stage_seconds_bucket", stage="kafka", le="0.015") == 7
        # The same durations as the HDR histograms of `streamer latency`.
        hdr = runtime.latency.histograms["end_to_end"]
        assert hdr.get_total_count() == 7
        seconds = sample(registry, "streamer_stage_seconds_sum", stage="end_to_end")
        assert seconds == pytest.approx(hdr.get_mean_value() * 7 / 1e6, rel=0.01)
    finally:
        runtime.pool.shutdown()
        await runtime.store.close()


async def test_scored_events_count_by_stream_topic_and_sentiment(redis_url: str) -> None:
    runtime = Runtime.build(alert_settings(redis_url), KeywordScorer())
    try:
        batch = [record(0), record(1), record(2, "Crude steady in quiet trade")]
        await runtime.processor.aggregate(await runtime.processor.score(batch))
        registry = runtime.metrics.registry
        labels = {"stream": "news", "topic": "Energy | Oil"}
        assert sample(registry, "streamer_sentiment_total", sentiment="negative", **labels) == 2
        assert sample(registry, "streamer_sentiment_total", sentiment="neutral", **labels) == 1
    finally:
        runtime.pool.shutdown()
        await runtime.store.close()


async def test_each_redis_write_retry_is_counted(tmp_path: Path) -> None:
    (port,) = free_ports(1)  # nothing listens there: every attempt fails
    settings = Settings(_env_file=None, REDIS_URL=f"redis://127.0.0.1:{port}/0",
                        redis_retry_attempts=3, redis_retry_backoff_s=0.01)
    metrics = Metrics()
    store = TrendStore.connect(settings.redis, settings.aggregate,
                               on_retry=metrics.redis_retries.inc)
    delta = PartitionDelta("news", 0, [0], scored=1)
    try:
        with pytest.raises(AggregateUnavailable):
            await store.apply(delta)
    finally:
        await store.close()
    # Three attempts: two retries, then it gives up.
    assert metrics.registry.get_sample_value("streamer_redis_retries_total") == 2
