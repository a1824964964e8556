"""The benchmark's librdkafka load generator against the real broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from streamer.kafka.admin import delete_topics, ensure_topics
from streamer.kafka.producer import max_request_bytes
from streamer.produce.rdkafka_sender import SendFailed, available, send_paced, version
from streamer.produce.sender import Outgoing
from streamer.settings import Settings


def _settings(bootstrap: str) -> Settings:
    return Settings(_env_file=None, kafka_bootstrap=bootstrap)


async def _read(bootstrap: str, topic: str, n: int) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += records
    finally:
        await consumer.stop()
    return got


def test_it_runs_against_the_local_plaintext_broker_and_names_its_versions(
    kafka_bootstrap: str,
) -> None:
    import confluent_kafka

    assert available(_settings(kafka_bootstrap))
    assert version() == (f"librdkafka {confluent_kafka.libversion()[0]} "
                         f"(confluent-kafka {confluent_kafka.__version__})")


async def test_every_record_arrives_stamped_with_its_intended_send_time(
    kafka_bootstrap: str,
) -> None:
    settings = _settings(kafka_bootstrap)
    topic = f"t-load-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic], partitions=1)
    rate, n = 200.0, 60
    try:
        report = await send_paced(
            settings, [Outgoing(topic, b"k%d" % i, b"v%d" % i) for i in range(n)], rate=rate)
        got = await _read(kafka_bootstrap, topic, n)
    finally:
        await delete_topics(settings, [topic])
    assert report.sent == n and report.by_topic == {topic: n}
    assert [(r.key, r.value) for r in got] == [(b"k%d" % i, b"v%d" % i) for i in range(n)]
    # Open loop: record i is stamped start + i / rate (to the ms), however late it left.
    start = got[0].timestamp
    assert [r.timestamp - start for r in got] == pytest.approx(
        [i * 1000 / rate for i in range(n)], abs=1.0)


async def test_a_record_the_client_refuses_fails_the_send_with_the_reason(
    kafka_bootstrap: str,
) -> None:
    settings = _settings(kafka_bootstrap)
    huge = b"x" * (max_request_bytes(settings) + 1)
    with pytest.raises(SendFailed, match="too large"):
        await send_paced(settings, [Outgoing("t-load-refused", None, huge)], rate=None)


async def test_keys_land_on_the_partitions_aiokafka_picks(kafka_bootstrap: str) -> None:
    from aiokafka.partitioner import DefaultPartitioner

    settings = _settings(kafka_bootstrap)
    topic = f"t-load-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic], partitions=4)
    keys = [b"AAPL", b"MSFT", b"TSLA", b"NVDA", b"JPM", b"XOM", b"GS", b"BA"]
    try:
        await send_paced(settings, [Outgoing(topic, k, b"v") for k in keys], rate=None)
        where = {r.key: r.partition for r in await _read(kafka_bootstrap, topic, len(keys))}
    finally:
        await delete_topics(settings, [topic])
    pick = DefaultPartitioner()
    assert where == {k: pick(k, [0, 1, 2, 3], [0, 1, 2, 3]) for k in keys}
