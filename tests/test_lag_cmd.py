"""``streamer lag``: the group's lag from its committed offsets in Kafka, no worker needed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from harness import REPO, Namespace
from servers import free_ports

from streamer.kafka.admin import ensure_topics
from streamer.settings import Settings


async def fill_and_commit(settings: Settings) -> None:
    """news: 2 partitions with 5 and 3 records, the group committed 4 and nothing; chat:
    1 partition with 2 records, all committed."""
    news, chat = settings.topics.news, settings.topics.chat
    await ensure_topics(settings, [news], partitions=2)
    await ensure_topics(settings, [chat], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap)
    await producer.start()
    try:
        for topic, partition, n in ((news, 0, 5), (news, 1, 3), (chat, 0, 2)):
            for i in range(n):
                await producer.send_and_wait(topic, b"x%d" % i, partition=partition)
    finally:
        await producer.stop()
    await commit(settings, TopicPartition(news, 0), 4)
    await commit(settings, TopicPartition(chat, 0), 2)


async def commit(settings: Settings, tp: TopicPartition, offset: int) -> None:
    """Commit ``offset`` on ``tp`` for the workers' group, as a worker would."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap,
                                group_id=settings.worker.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


@pytest.fixture
def ns(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Namespace:
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path)
    asyncio.run(fill_and_commit(ns.settings()))
    return ns


def lag(ns: Namespace, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamer.cli.main", "lag", *args],
                          env={**os.environ, **ns.env(), **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_it_reports_committed_end_and_lag_per_partition(ns: Namespace) -> None:
    out = lag(ns, "--json")
    read = json.loads(out.stdout)
    rows = {(p["topic"], p["partition"]): (p["committed"], p["end"], p["lag"])
            for p in read["partitions"]}
    assert rows == {(f"news-{ns.uid}", 0): (4, 5, 1), (f"news-{ns.uid}", 1): (None, 3, 3),
                    (f"chat-{ns.uid}", 0): (2, 2, 0)}
    assert read["total"] == 4 and read["group"] == f"streamer-{ns.uid}"


def test_the_table_names_each_partition_and_the_total(ns: Namespace) -> None:
    out = lag(ns, "--max-lag", "10")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(f"news-{ns.uid}" in ln and "none" in ln and " 3 " in ln for ln in lines)
    assert any("total" in ln and "4" in ln for ln in lines)


def test_it_exits_1_when_the_lag_is_over_the_limit(ns: Namespace) -> None:
    assert lag(ns, "--max-lag", "4").returncode == 0
    over = lag(ns, "--max-lag", "3")
    assert over.returncode == 1
    assert "over 3" in over.stdout
    # The limit's setting, when no option is given.
    assert lag(ns, STREAMER_WORKER_LAG_MAX_RECORDS="3").returncode == 1
    assert lag(ns, STREAMER_WORKER_LAG_MAX_RECORDS="4").returncode == 0


def test_a_missing_topic_is_one_line_and_exit_66(ns: Namespace) -> None:
    out = lag(ns, "--topic", f"nwes-{ns.uid}")
    assert out.returncode == 66
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"error: no such topic on {ns.kafka_bootstrap}: nwes-{ns.uid}")
    assert "what to do: check --topic" in line


def test_kafka_down_is_one_line_with_what_to_do_and_exit_69(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    ns = Namespace(f"127.0.0.1:{port}", "redis://127.0.0.1:1/0", tmp_path)
    out = lag(ns)
    assert out.returncode == 69
    (line,) = out.stderr.splitlines()  # no traceback, no "Unclosed AIOKafkaConsumer"
    assert line.startswith(f"error: Kafka at 127.0.0.1:{port}")
    assert "what to do:" in line
    assert out.stdout == ""


def scrape(port: int) -> dict[str, float]:
    """The exporter's samples, ``name{labels}`` -> value ({} while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def wait_for(port: int, key: str, value: float, exporter: subprocess.Popen[str],
             timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        assert exporter.poll() is None, "the exporter exited"
        seen = scrape(port)
        if seen.get(key) == value:
            return
        time.sleep(0.3)
    raise AssertionError(f"{key} never {value}: {seen}")


def exporter(ns: Namespace, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamer.cli.main", "lag", "--serve", "--port", str(port)],
        env={**os.environ, **ns.env(), "STREAMER_WORKER_LAG_EXPORT_INTERVAL_S": "0.5"},
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_exporter_serves_the_committed_lag_and_follows_new_commits(ns: Namespace) -> None:
    (port,) = free_ports(1)
    proc = exporter(ns, port)
    labels = f'group="streamer-{ns.uid}",partition="1",topic="news-{ns.uid}"'
    try:
        wait_for(port, f"streamer_group_lag{{{labels}}}", 3.0, proc)
        assert scrape(port)[f"streamer_group_committed_offset{{{labels}}}"] == -1.0
        asyncio.run(commit(ns.settings(), TopicPartition(f"news-{ns.uid}", 1), 3))
        wait_for(port, f"streamer_group_lag{{{labels}}}", 0.0, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_the_exporter_outlives_kafka_being_down_and_counts_the_failed_reads(
        tmp_path: Path) -> None:
    kafka_port, port = free_ports(2)
    ns = Namespace(f"127.0.0.1:{kafka_port}", "redis://127.0.0.1:1/0", tmp_path)
    proc = exporter(ns, port)
    try:
        deadline = time.monotonic() + 60
        while scrape(port).get('streamer_group_lag_reads_total{result="failed"}', 0) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, scrape(port)
            time.sleep(0.3)
        assert scrape(port)['streamer_group_lag_reads_total{result="ok"}'] == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
