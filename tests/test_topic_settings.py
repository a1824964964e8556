"""Topics the app creates take their partitions, replication factor and retention from the
settings; an existing topic that differs is left alone, with a warning (real broker)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from streamer.kafka.admin import TopicError, delete_topics, ensure_topics, topic_drift
from streamer.settings import Settings


def _name(what: str) -> str:
    return f"t-{what}-{uuid.uuid4().hex[:8]}"


async def _described(bootstrap: str, topic: str) -> tuple[int, int, str]:
    """(partitions, replication factor, retention.ms) as the broker reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [meta] = await admin.describe_topics([topic])
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": None})])
        entries = response.resources[0][4]
        retention = next(e[1] for e in entries if e[0] == "retention.ms")
        parts = meta["partitions"]
        return len(parts), len(parts[0]["replicas"]), retention
    finally:
        await admin.close()


async def test_created_topics_take_partitions_and_retention_from_the_settings(
    kafka_bootstrap: str,
) -> None:
    settings = Settings(_env_file=None, kafka_bootstrap=kafka_bootstrap, topic_partitions=3,
                        topic_retention_ms=3_600_000, topic_replication_factor=1)
    topic = _name("made")
    try:
        assert await ensure_topics(settings, [topic]) == [topic]
        assert await _described(kafka_bootstrap, topic) == (3, 1, "3600000")
    finally:
        await delete_topics(settings, [topic])


async def test_a_replication_factor_the_cluster_cannot_hold_is_an_error_naming_the_setting(
    kafka_bootstrap: str,
) -> None:
    # The test broker is a single node: a replication factor of 3 cannot be placed.
    settings = Settings(_env_file=None, kafka_bootstrap=kafka_bootstrap,
                        topic_replication_factor=3)
    topic = _name("rf3")
    try:
        with pytest.raises(TopicError, match="STREAMER_TOPIC_REPLICATION_FACTOR"):
            await ensure_topics(settings, [topic], partitions=1)
    finally:
        await delete_topics(settings, [topic])


async def test_an_existing_topic_that_differs_is_left_alone_with_a_warning(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture,
) -> None:
    first = Settings(_env_file=None, kafka_bootstrap=kafka_bootstrap, topic_partitions=2,
                     topic_retention_ms=600_000)
    topic = _name("drift")
    try:
        await ensure_topics(first, [topic])
        later = first.replace(topic_partitions=4, topic_retention_ms=86_400_000)
        with caplog.at_level(logging.WARNING, logger="streamer.kafka.admin"):
            assert await ensure_topics(later, [topic]) == []
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("partitions 2" in m and "STREAMER_TOPIC_PARTITIONS" in m for m in warned)
        assert any("retention.ms 600000" in m and "STREAMER_TOPIC_RETENTION_MS" in m
                   for m in warned)
        # Left as it was.
        assert await _described(kafka_bootstrap, topic) == (2, 1, "600000")
        drift = {(d.setting, d.have, d.want) for d in await topic_drift(later, [topic])}
        assert drift == {("partitions", "2", "4"), ("retention.ms", "600000", "86400000")}
    finally:
        await delete_topics(first, [topic])


async def test_a_topic_that_matches_the_settings_draws_no_warning(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(_env_file=None, kafka_bootstrap=kafka_bootstrap, topic_partitions=2,
                        topic_retention_ms=600_000)
    topic = _name("same")
    try:
        await ensure_topics(settings, [topic])
        with caplog.at_level(logging.WARNING, logger="streamer.kafka.admin"):
            await ensure_topics(settings, [topic])
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert await topic_drift(settings, [topic]) == []
    finally:
        await delete_topics(settings, [topic])


def _topics_cli(bootstrap: str, uid: str, **env: str) -> subprocess.CompletedProcess[str]:
    names = {"STREAMER_TOPIC_NEWS": f"news-{uid}", "STREAMER_TOPIC_CHAT": f"chat-{uid}",
             "STREAMER_TOPIC_SCORED": f"scored-{uid}", "STREAMER_TOPIC_ALERTS": f"alerts-{uid}"}
    return subprocess.run(
        [sys.executable, "-m", "streamer.cli.main", "topics"], capture_output=True, text=True,
        env={**os.environ, "KAFKA_BOOTSTRAP": bootstrap, **names, **env}, timeout=120,
        check=False)


async def test_streamer_topics_says_which_topic_differs_and_exits_1(
    kafka_bootstrap: str,
) -> None:
    uid = uuid.uuid4().hex[:8]
    made = Settings(_env_file=None, kafka_bootstrap=kafka_bootstrap, topic_news=f"news-{uid}",
                    topic_chat=f"chat-{uid}", topic_scored=f"scored-{uid}",
                    topic_alerts=f"alerts-{uid}", topic_partitions=2)
    created = await ensure_topics(made)
    try:
        same = await asyncio.to_thread(_topics_cli, kafka_bootstrap, uid,
                                       STREAMER_TOPIC_PARTITIONS="2")
        assert same.returncode == 0, same.stdout + same.stderr
        other = await asyncio.to_thread(_topics_cli, kafka_bootstrap, uid,
                                        STREAMER_TOPIC_PARTITIONS="3")
        assert other.returncode == 1, other.stdout + other.stderr
        assert f"topic 'news-{uid}' exists with partitions 2" in " ".join(other.stdout.split())
    finally:
        await delete_topics(made, created)


def test_streamer_topics_exits_66_when_a_topic_is_missing(kafka_bootstrap: str) -> None:
    out = _topics_cli(kafka_bootstrap, uuid.uuid4().hex[:8])
    assert out.returncode == 66, out.stdout + out.stderr
    assert "no such topic" in out.stdout + out.stderr


def test_a_worker_whose_topics_kafka_refuses_stops_once_with_the_reason(
    kafka_bootstrap: str,
) -> None:
    uid = uuid.uuid4().hex[:8]
    out = subprocess.run(
        [sys.executable, "-m", "streamer.cli.main", "worker"], capture_output=True, text=True,
        env={**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap,
             "STREAMER_TOPIC_NEWS": f"news-{uid}", "STREAMER_TOPIC_CHAT": f"chat-{uid}",
             "STREAMER_TOPIC_SCORED": f"scored-{uid}", "STREAMER_TOPIC_ALERTS": f"alerts-{uid}",
             "STREAMER_TOPIC_REPLICATION_FACTOR": "3", "STREAMER_WORKER_MAX_RESTARTS": "0",
             "STREAMER_SCORER": "baseline"},
        timeout=120, check=False)
    said = " ".join((out.stdout + out.stderr).split())
    assert out.returncode == 78, said  # needs an operator: no restart loop
    assert "STREAMER_TOPIC_REPLICATION_FACTOR" in said and "Traceback" not in said
