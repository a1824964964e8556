"""The Kafka hop alone: what every pipeline on this broker pays before its own code runs.

An open-loop producer (the benchmark's own load generator, same settings) and a plain aiokafka
consumer in one process, on a fresh topic. Latency is the consumer's receive time minus
the record's timestamp, which is its intended send time: the same origin and wall clock
as the pipelines' end-to-end figures, so the report can set them side by side. A
pipeline's end-to-end latency includes this hop, so it cannot go below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from aiokafka import AIOKafkaConsumer

from streamer.bench.load import send_load
from streamer.kafka.admin import delete_topics, ensure_topics
from streamer.kafka.security import client_options, start_client
from streamer.latency.histograms import new_histogram
from streamer.latency.report import StageLatency, histogram_row
from streamer.produce.sender import Outgoing
from streamer.settings import Settings


async def kafka_hop(settings: Settings, payloads: list[bytes], rate: float,
                    timeout_s: float = 30.0) -> StageLatency | None:
    """Send ``payloads`` at ``rate`` msg/s; the hop's percentiles (None: no payloads).

    Raises TimeoutError when the consumer is not assigned, or not everything arrives,
    within ``timeout_s``."""
    topic = f"bench-hop-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic], partitions=1)
    hist = new_histogram()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka.bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, **client_options(settings.kafka))
    await start_client(settings.kafka, consumer)
    try:
        # Assignment first, so the first records do not wait for the consumer to join.
        deadline = time.monotonic() + timeout_s
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no partition of {topic} assigned in {timeout_s:g} s")
            await asyncio.sleep(0.05)

        async def receive() -> None:
            seen = 0
            while seen < len(payloads):
                batch = await consumer.getmany(timeout_ms=200)
                now_ms = time.time() * 1000.0
                for records in batch.values():
                    for r in records:
                        hist.record_value(max(1, round((now_ms - r.timestamp) * 1000)))
                        seen += 1

        receiving = asyncio.create_task(receive())
        await send_load(settings, [Outgoing(topic, None, p) for p in payloads], rate=rate)
        await asyncio.wait_for(receiving, timeout_s)
    finally:
        await consumer.stop()
        with contextlib.suppress(Exception):
            await delete_topics(settings, [topic])
    return histogram_row("kafka hop", hist)
