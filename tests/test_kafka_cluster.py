"""The local 3-node Kafka cluster: a 3-voter KRaft quorum and 3 brokers, topics with
replication factor 3 and min ISR 2, and an acknowledged record that outlives its leader.
Real JVMs, no mocks; one cluster for the session (tests/servers.py), one more for the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from redis_cluster_server import free_cluster_port
from servers import cluster_settings, free_ports

from streamer.devstack import LocalKafkaCluster, StackError
from streamer.devstack.kafka_cluster import parse_quorum_status
from streamer.devstack.redis_cluster import LocalRedisCluster
from streamer.kafka import ensure_topics, make_producer
from streamer.kafka.admin import topic_drift
from streamer.settings import Settings

pytestmark = pytest.mark.timeout(300)


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _topic_config(settings: Settings, topic: str, key: str,
                        timeout_s: float = 15.0) -> str | None:
    """The topic's effective ``key``; a broker that has not heard of a new topic yet
    answers UNKNOWN_TOPIC with no entries, so ask again until one knows it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, configs={key: None})])
            for response in responses:
                for resource in response.resources:
                    for entry in resource[4]:
                        if entry[0] == key:
                            return str(entry[1])
            await asyncio.sleep(0.3)
    finally:
        await admin.close()
    return None


async def _produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    producer = make_producer(settings)  # the project's own: idempotent, acks=all
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _read_all(settings: Settings, topic: str, expected: int,
                    timeout_s: float = 60.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            got += [record.value or b"" for record in batch.get(tp, [])]
        return got
    finally:
        await consumer.stop()


# --- pure --------------------------------------------------------------------------------


def test_the_quorum_tool_output_is_read() -> None:
    text = (
        "ClusterId:              abc\nLeaderId:               2\nLeaderEpoch:            3\n"
        "HighWatermark:          120\nMaxFollowerLag:         0\n"
        'CurrentVoters:          [{"id": 3, "directoryId": "x", "endpoints": []}, '
        '{"id": 1, "directoryId": "y", "endpoints": []}, {"id": 2}]\n'
        "CurrentObservers:       []\n")
    status = parse_quorum_status(text)
    assert (status.leader_id, status.leader_epoch, status.high_watermark) == (2, 3, 120)
    assert (status.voters, status.observers) == ([1, 2, 3], [])


def test_a_cluster_refuses_another_shape_than_its_storage(tmp_path: Path) -> None:
    settings = cluster_settings(tmp_path)
    cluster = LocalKafkaCluster(settings)
    cluster.dir.mkdir(parents=True)
    cluster.state_file.write_text(json.dumps({
        "cluster_id": "x", "version": "4.1.1",
        "voters": [{"node_id": 1, "controller_port": 1, "directory_id": "d"}]}))
    with pytest.raises(StackError, match="STREAMER_KAFKA_BROKERS=1"):
        LocalKafkaCluster(settings, brokers=3).start()


# --- the session's cluster ----------------------------------------------------------------


def test_three_voters_and_three_brokers(kafka_cluster: LocalKafkaCluster) -> None:
    quorum = kafka_cluster.quorum()
    assert quorum.voters == [1, 2, 3] and quorum.observers == []
    assert quorum.leader_id in quorum.voters

    async def brokers() -> list[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_cluster()
        finally:
            await admin.close()
        return sorted(int(b["node_id"]) for b in described["brokers"])

    assert asyncio.run(brokers()) == [1, 2, 3]
    status = kafka_cluster.status()
    assert status.running and status.brokers == 3
    assert all(n.roles == "broker,controller" and n.rss_mb for n in status.nodes)
    rss = {n.node_id: n.rss_mb for n in status.nodes}
    print(f"\nKafka cluster RSS MB per node {rss}, total {sum(filter(None, rss.values())):.0f}")


def test_the_apps_topics_get_replication_3_and_min_isr_2(
        kafka_cluster: LocalKafkaCluster) -> None:
    settings = kafka_cluster.client_settings().replace(topic_partitions=2)
    assert (settings.topics.replication_factor, settings.topics.min_insync_replicas) == (3, 2)
    topic = _topic("rf3")
    assert asyncio.run(ensure_topics(settings, [topic])) == [topic]
    states = kafka_cluster.partitions(topic)
    assert [state.partition for state in states] == [0, 1]
    assert all(state.replicas == [1, 2, 3] and state.isr == [1, 2, 3] for state in states)
    assert asyncio.run(_topic_config(settings, topic, "min.insync.replicas")) == "2"
    assert asyncio.run(topic_drift(settings, [topic])) == []
    # A topic made with the brokers' defaults alone (no topic configs) gets the same.
    bare = settings.replace(topic_min_insync_replicas=None)
    other = _topic("defaults")
    asyncio.run(ensure_topics(bare, [other]))
    assert asyncio.run(_topic_config(bare, other, "min.insync.replicas")) == "2"
    assert asyncio.run(_topic_config(bare, other, "unclean.leader.election.enable")) == "false"


def test_an_acked_record_outlives_a_sigkill_of_its_leader(
        kafka_cluster: LocalKafkaCluster) -> None:
    settings = kafka_cluster.client_settings().replace(topic_partitions=1)
    topic = _topic("failover")
    asyncio.run(ensure_topics(settings, [topic]))
    before = [f"before-{i}".encode() for i in range(50)]
    asyncio.run(_produce(settings, topic, before))
    leader = kafka_cluster.partition(topic).leader
    assert leader is not None
    victim = kafka_cluster.node(leader)
    victim.kill()  # SIGKILL: no controlled shutdown, nothing flushed
    try:
        moved = kafka_cluster.wait_leader(topic, 0, other_than=leader)
        assert moved.leader != leader and leader not in moved.isr
        # Two replicas in sync = min ISR: acks=all writes still succeed.
        after = [f"after-{i}".encode() for i in range(50)]
        asyncio.run(_produce(settings, topic, after))
        got = asyncio.run(_read_all(settings, topic, len(before) + len(after)))
        assert got == before + after  # every acknowledged record, once, in order
    finally:
        victim.start()  # the same storage: it catches up and rejoins
    rejoined = kafka_cluster.wait_isr(topic, 0, 3, timeout_s=120)
    assert leader in rejoined.isr


def _state(pid: int | None) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_node_can_be_paused_and_resumed(kafka_cluster: LocalKafkaCluster) -> None:
    node = kafka_cluster.node(3)
    pid = node.node_status().pid
    node.pause()
    try:
        deadline = time.monotonic() + 10  # the kernel stops every JVM thread, not at once
        while _state(pid) != "T" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(pid) == "T"
    finally:
        node.resume()
    node.wait_ready(120)
    assert node.node_status().pid == pid  # the same process went on


# --- the CLI --------------------------------------------------------------------------------


def _streamer(args: list[str], env: dict[str, str], cwd: Path,
              timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("streamer")  # the installed command
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("STREAMER_", "KAFKA_", "REDIS_"))}
    return subprocess.run([str(exe), *args], env={**keep, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_stack_up_status_down_with_three_brokers(tmp_path: Path) -> None:
    settings = cluster_settings(tmp_path / "data")
    (redis_port,) = free_ports(1)
    env = {"STREAMER_DATA_DIR": str(settings.paths.data_dir),
           "STREAMER_KAFKA_PORT": str(settings.stack.kafka_port),
           "STREAMER_KAFKA_CONTROLLER_PORT": str(settings.stack.kafka_controller_port),
           "STREAMER_REDIS_PORT": str(redis_port),
           "STREAMER_REDIS_CLUSTER_PORT": str(free_cluster_port()),
           "STREAMER_STACK_START_TIMEOUT_S": str(settings.stack.stack_start_timeout_s)}
    try:
        up = _streamer(["stack", "up", "--kafka-brokers", "3", "--redis-cluster"], env,
                       tmp_path)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "STREAMER_TOPIC_REPLICATION_FACTOR=3" in up.stdout
        # No --kafka-brokers and no STREAMER_KAFKA_BROKERS: status finds the running cluster.
        shown = _streamer(["stack", "status", "--json"], env, tmp_path)
        assert shown.returncode == 0, shown.stderr
        kafka = json.loads(shown.stdout)["kafka"]
        assert kafka["running"] and kafka["brokers"] == 3
        assert [n["node_id"] for n in kafka["nodes"]] == [1, 2, 3]
        assert all(n["pid"] and n["rss_mb"] for n in kafka["nodes"])
        rcluster = json.loads(shown.stdout)["redis_cluster"]
        assert rcluster["state"] == "ok"
        assert sorted(n["role"] for n in rcluster["nodes"]) == ["master"] * 3 + ["replica"] * 3
        assert sum(n["slots"] for n in rcluster["nodes"]) == 16_384
        table = _streamer(["stack", "status"], {**env, "COLUMNS": "120"}, tmp_path)
        assert "kafka node 3" in table.stdout, table.stdout
    finally:
        down = _streamer(["stack", "down"], env, tmp_path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "3-node cluster): stopped" in down.stdout, down.stdout
    after = LocalKafkaCluster(settings).status()
    assert not any(n.running for n in after.nodes)
    redis_after = LocalRedisCluster(settings.replace(
        redis_cluster_port=int(env["STREAMER_REDIS_CLUSTER_PORT"]))).status()
    assert not any(n.running for n in redis_after.nodes)
