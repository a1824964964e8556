"""The project's producer against a stalled broker (SIGSTOP): it waits a stall out without
writing a record twice, and past its deadline gives up saying how many it sent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, NodeNotReadyError
from harness import Namespace, read_topic
from servers import local_settings, running

from streamer.devstack import LocalKafka
from streamer.kafka import ensure_topics
from streamer.produce.sender import Outgoing, ProduceGaveUp, SendReport, send_all
from streamer.settings import Settings

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT_S = 3.0  # the producer's request timeout, well under the stall
STALL_S = 20.0
PARTITIONS = 4


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    with running(LocalKafka(local_settings(tmp_path_factory.mktemp("kafka"))),
                 "a private Kafka broker") as broker:
        yield broker


def producer_settings(kafka: LocalKafka, deadline_s: float) -> Settings:
    return Settings(_env_file=None, KAFKA_BOOTSTRAP=kafka.bootstrap,
                    kafka_request_timeout_s=REQUEST_TIMEOUT_S, produce_deadline_s=deadline_s,
                    produce_retry_backoff_s=0.2, produce_retry_backoff_max_s=1.0)


# Records this size fill the producer's per-partition batches within the stall, so its
# sends have to wait for the broker (small ones would just pile up in an open batch).
PAD = "x" * 2_000


def numbered(topic: str, n: int) -> list[Outgoing]:
    return [Outgoing(topic, str(i).encode(), orjson.dumps({"i": i, "pad": PAD}))
            for i in range(n)]


def make_topic(kafka: LocalKafka, topic: str) -> str:
    # The test before may have just resumed the paused broker: the first admin request
    # can find no node ready yet (seen once in CI), so give it a few tries.
    for attempt in range(10):
        try:
            asyncio.run(ensure_topics(producer_settings(kafka, 60.0), [topic],
                                      partitions=PARTITIONS))
            return topic
        except (NodeNotReadyError, KafkaConnectionError):
            if attempt == 9:
                raise
            time.sleep(1.0)
    return topic


def pause_when_written(kafka: LocalKafka, topic: str, records: int) -> None:
    """Pause the broker once ``records`` of the (existing) topic are written: mid-stream."""

    async def wait_written() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap)
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            while sum((await consumer.end_offsets(parts)).values()) < records:
                await asyncio.sleep(0.2)
        finally:
            await consumer.stop()

    asyncio.run(wait_written())
    kafka.pause()


def test_stall_longer_than_request_timeout_is_waited_out_exactly_once(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    topic, n = make_topic(kafka, "stall-once"), 600
    result: list[SendReport | BaseException] = []

    def produce() -> None:
        try:
            result.append(asyncio.run(send_all(producer_settings(kafka, 120.0),
                                               numbered(topic, n), rate=20.0, progress=False)))
        except BaseException as exc:  # reported below
            result.append(exc)

    sender = threading.Thread(target=produce, daemon=True)
    sender.start()
    try:
        pause_when_written(kafka, topic, 40)
        time.sleep(STALL_S)
    finally:
        kafka.resume()
    sender.join(300)
    assert not sender.is_alive()
    (report,) = result
    assert isinstance(report, SendReport), repr(report)
    assert report.sent == n
    got = Counter(int(str(r["i"])) for r in read_topic(
        Namespace(kafka.bootstrap, "redis://unused", tmp_path), topic, n))
    assert set(got) == set(range(n))
    assert max(got.values()) == 1, [i for i, c in got.items() if c > 1][:10]


def test_stall_past_the_deadline_gives_up_saying_how_many_were_sent(kafka: LocalKafka) -> None:
    topic, n = make_topic(kafka, "stall-give-up"), 400
    error: list[ProduceGaveUp] = []

    def produce() -> None:
        try:
            asyncio.run(send_all(producer_settings(kafka, 6.0), numbered(topic, n),
                                 rate=20.0, total=n, progress=False))
        except ProduceGaveUp as exc:
            error.append(exc)

    sender = threading.Thread(target=produce, daemon=True)
    sender.start()
    try:
        pause_when_written(kafka, topic, 20)
        sender.join(120)
    finally:
        kafka.resume()
    assert not sender.is_alive()
    (exc,) = error
    assert 20 <= exc.sent < n
    assert f"{exc.sent} of {n} messages sent" in str(exc)


def test_cli_stall_past_the_deadline_prints_one_line_and_exits_non_zero(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    topic, n = make_topic(kafka, "stall-cli"), 400
    data = tmp_path / "in.jsonl"
    data.write_bytes(b"".join(orjson.dumps({"id": f"m{i}", "text": PAD}) + b"\n"
                              for i in range(n)))
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka.bootstrap, "STREAMER_PRODUCE_DEADLINE_S": "6",
           "STREAMER_KAFKA_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S)}
    cli = subprocess.Popen(
        [sys.executable, "-m", "streamer.cli.main", "replay", str(data), "--topic", topic,
         "--rate", "20"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        pause_when_written(kafka, topic, 20)
        out, _ = cli.communicate(timeout=120)
    finally:
        kafka.resume()
        cli.kill()
    assert cli.returncode != 0, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, out
    assert f"of {n} messages sent" in errors[0] and "STREAMER_PRODUCE_DEADLINE_S" in errors[0]
