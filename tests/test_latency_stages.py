"""Queueing is told apart from the Kafka hop: the 'ready' stamp the worker's stream
leaves when it goes back for a record, through the batch processor to the histograms."""

from __future__ import annotations

import time

from alert_support import alert_settings
from batch_support import KeywordScorer, record

from agents.runtime import ConsumeStamps, Runtime
from streamer.batch import RawRecord


async def test_a_record_that_waited_for_a_busy_worker_counts_as_queue_not_kafka(
    redis_url: str,
) -> None:
    runtime = Runtime.build(alert_settings(redis_url), KeywordScorer())
    try:
        now_ms = time.time() * 1000.0
        # Produced 900 ms ago; the worker was busy until 30 ms ago, then took it 20 ms ago.
        records = [RawRecord("news", 0, r.offset, r.value, timestamp_ms=int(now_ms) - 900,
                             consumed_ms=now_ms - 20.0, ready_ms=now_ms - 30.0)
                   for r in map(record, range(5))]
        out = await runtime.processor.aggregate(await runtime.processor.score(records))
        assert len(out.scored) == 5
        h = runtime.latency.histograms
        assert h["queue"].get_total_count() == 5 and h["kafka"].get_total_count() == 5
        assert 865_000 <= h["queue"].get_value_at_percentile(50) <= 875_000  # ~870 ms (µs)
        assert 9_000 <= h["kafka"].get_value_at_percentile(50) <= 11_000     # ~10 ms
        stamps = out.scored[0].stamps
        assert stamps.produced is not None and stamps.requested is not None
        assert stamps.produced < stamps.requested < (stamps.consumed or 0)
    finally:
        runtime.pool.shutdown()
        await runtime.store.close()


def test_consume_stamps_pair_each_record_with_its_streams_last_readiness() -> None:
    stamps = ConsumeStamps(started_ms=1_000.0)
    stamps.put(("news", 0, 1), 1_500.0)  # first record: ready since the worker started
    stamps.mark_ready("news", 1_600.0)   # done with it, back for the next
    stamps.put(("news", 0, 2), 1_610.0)
    stamps.put(("chat", 1, 7), 1_620.0)  # another topic's stream: its own readiness
    assert stamps.pop(("news", 0, 1)) == (1_500.0, 1_000.0)
    assert stamps.pop(("news", 0, 2)) == (1_610.0, 1_600.0)
    assert stamps.pop(("chat", 1, 7)) == (1_620.0, 1_000.0)
    assert stamps.pop(("news", 0, 2)) is None  # once each
