"""The local stack and the test servers: real Kafka and Redis, no mocks."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from servers import console_consume, local_settings, unavailable

from streamer.devstack import LocalKafka, LocalRedis, StackError
from streamer.devstack.kafka import java_major, new_cluster_id, offsets_partition_for

pytestmark = pytest.mark.timeout(300)


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


# --- pure helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("garbage", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    assert java_major(output) == major


def test_cluster_id_has_kafka_uuid_shape() -> None:
    for _ in range(50):
        cid = new_cluster_id()
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


@pytest.mark.parametrize(
    ("group", "partition"),
    # Expected values computed by Java: Math.abs(group.hashCode()) % 50.
    [("__streamer-ready-0", 44), ("__streamer-ready-17", 48), ("abc", 4), ("streamer", 11)],
)
def test_offsets_partition_matches_kafka(group: str, partition: int) -> None:
    assert offsets_partition_for(group, 50) == partition


# --- Kafka ------------------------------------------------------------------------------


async def test_kafka_answers_metadata(kafka_bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        info = await admin.describe_cluster()
    finally:
        await admin.close()
    assert info["brokers"], info


async def test_topic_round_trip(kafka_bootstrap: str) -> None:
    topic = _topic("roundtrip")
    await _create_topic(kafka_bootstrap, topic, partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"hello", key=b"k1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=_topic("g"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.key, record.value, record.partition) == (b"k1", b"hello", meta.partition)


async def test_console_consumer_reads_aiokafka_messages(kafka_bootstrap: str) -> None:
    """Kafka's own consumer sees what aiokafka wrote, and read_committed hides an abort."""
    topic = _topic("console")
    await _create_topic(kafka_bootstrap, topic)
    await _produce(kafka_bootstrap, topic, [b"plain"])
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=_topic("tx"), acks="all"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", partition=0)
        await producer.abort_transaction()
        async with producer.transaction():  # commits on leaving the block
            await producer.send_and_wait(topic, b"committed", partition=0)
    finally:
        await producer.stop()

    assert console_consume(kafka_bootstrap, topic, max_messages=2, timeout_s=15) == [
        "plain",
        "committed",
    ]
    uncommitted = console_consume(
        kafka_bootstrap, topic, 3, 15, isolation_level="read_uncommitted"
    )
    assert uncommitted == ["plain", "aborted", "committed"]


async def test_local_kafka_restart_keeps_topics_and_offsets(tmp_path: Path) -> None:
    """A private broker (own dir, own ports): stop/start keeps topics and group offsets."""
    kafka = LocalKafka(local_settings(tmp_path))
    try:
        bootstrap = kafka.start()
    except StackError as exc:
        kafka.stop()
        unavailable(f"local Kafka could not start: {exc}")
    topic, group = _topic("keep"), _topic("keep-group")
    tp = TopicPartition(topic, 0)
    try:
        first = kafka.status()
        assert first.running and first.pid is not None
        assert kafka.start() == bootstrap  # idempotent: same broker, no second process
        assert kafka.status().pid == first.pid

        await _create_topic(bootstrap, topic)
        await _produce(bootstrap, topic, [b"m1", b"m2", b"m3"])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            got = [(await consumer.getone()).value for _ in range(2)]
            await consumer.commit({tp: 2})
        finally:
            await consumer.stop()
        assert got == [b"m1", b"m2"]

        kafka.stop()
        assert not kafka.is_running()
        assert kafka.start() == bootstrap
        assert kafka.status().pid != first.pid

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            assert topic in await admin.list_topics()
        finally:
            await admin.close()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign([tp])
            assert await consumer.committed(tp) == 2
            assert (await consumer.getone()).value == b"m3"  # resumes at the commit
        finally:
            await consumer.stop()
    finally:
        kafka.stop()
    assert not kafka.status().running


def test_local_kafka_failed_start_reports_broker_output(tmp_path: Path) -> None:
    settings = local_settings(tmp_path).replace(**{"kafka_heap": "1k"})
    kafka = LocalKafka(settings)
    try:
        kafka.fetch_jars()
        kafka.java()
    except StackError as exc:
        unavailable(f"Kafka prerequisites missing: {exc}")
    with pytest.raises(StackError, match="exited during start-up") as err:
        kafka.start()
    assert "heap" in str(err.value).lower()  # the JVM's own complaint is in the message
    assert not kafka.is_running()


# --- Redis ------------------------------------------------------------------------------


def test_redis_round_trip(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        key = _topic("stack-test")
        client.set(key, "v", ex=60)
        assert client.get(key) == b"v"
    finally:
        client.close()


def test_local_redis_aof_and_restart(tmp_path: Path) -> None:
    server = LocalRedis(local_settings(tmp_path))
    try:
        url = server.start()
    except StackError as exc:
        server.stop()
        unavailable(f"local redis-server could not start: {exc}")
    try:
        pid = server.status().pid
        assert server.start() == url and server.status().pid == pid  # idempotent
        client = redis.Redis.from_url(url)
        try:
            client.set("survives", "yes")
            client.rpush("list", "a", "b")
        finally:
            client.close()
        # Redis >= 7 keeps a multi-part AOF in appendonlydir/; older ones one appendonly.aof.
        aof = list(server.dir.glob("appendonlydir/appendonly.aof*")) + list(
            server.dir.glob("appendonly.aof")
        )
        assert aof, sorted(p.name for p in server.dir.iterdir())

        server.stop()
        assert not server.is_running()
        server.start()
        client = redis.Redis.from_url(url)
        try:
            assert client.get("survives") == b"yes"
            assert client.lrange("list", 0, -1) == [b"a", b"b"]
        finally:
            client.close()
    finally:
        server.stop()
    assert not server.status().running
