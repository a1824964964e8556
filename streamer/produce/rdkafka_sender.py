"""The benchmark's load generator on librdkafka (the ``confluent-kafka`` package).

The generator shares the machine with the pipeline it measures. aiokafka's producer spends
more CPU per record (a request per record at linger 0, each through its sender task and
futures), taken from the worker and the broker; librdkafka does the same work in C on its
own threads, for less (the figures: docs/BENCHMARKS.md). Same contract as ``send_all``:
open loop, each record stamped with its intended send time, acks=all, and every record
acknowledged before it returns.

No idempotence, and so no retries (unlike ``send_all``, which waits a stalled broker out
for ``STREAMER_PRODUCE_DEADLINE_S``): librdkafka holds an idempotent producer's first records while
it gets a producer id (docs/BENCHMARKS.md), which showed as latency at the start of every
benchmark step. Without retries no record is written twice, and one the broker refuses, or
one not acknowledged within the delivery timeout, fails the run with ``SendFailed`` saying
how many were sent. The connection and the topics' metadata are fetched before the
schedule starts, so the first record leaves on time.

Upstream producers are not part of the system under test, so the benchmark uses this one
where it can (``available``) and says which one ran.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
from collections.abc import Iterable
from typing import Any

from streamer.kafka.producer import max_request_bytes
from streamer.produce.pacing import paced
from streamer.produce.sender import Outgoing, SendReport
from streamer.settings import Settings

# aiokafka's default request timeout: a record not acknowledged by then fails the send.
_DELIVERY_TIMEOUT_MS = 40_000


class SendFailed(RuntimeError):
    """The broker did not acknowledge every record."""


def available(settings: Settings) -> bool:
    """confluent-kafka is installed and the broker speaks PLAINTEXT (the local stack).

    Secured brokers keep aiokafka, whose TLS and SASL set-up the project already checks.
    """
    return (settings.kafka.security_protocol == "PLAINTEXT"
            and importlib.util.find_spec("confluent_kafka") is not None)


def version() -> str:
    import confluent_kafka as ck

    return f"librdkafka {ck.libversion()[0]} (confluent-kafka {ck.__version__})"


async def send_paced(settings: Settings, messages: Iterable[Outgoing], *,
                     rate: float | None) -> SendReport:
    """Send ``messages`` at ``rate`` msg/s (None: as fast as possible); raise SendFailed
    unless the broker acknowledged every one."""
    from confluent_kafka import KafkaException, Producer

    producer = Producer({
        "bootstrap.servers": settings.kafka.bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "retries": 0,
        "linger.ms": settings.kafka.linger_ms,
        # Keys land on the partitions the Java and aiokafka clients would pick.
        "partitioner": "murmur2_random",
        "compression.type": "none",
        "message.max.bytes": max_request_bytes(settings),
        "delivery.timeout.ms": _DELIVERY_TIMEOUT_MS,
    })
    failures: list[str] = []
    acked = 0

    def delivered(err: Any, _msg: Any) -> None:
        nonlocal acked
        if err is not None:
            failures.append(str(err))
        else:
            acked += 1

    items = list(messages)
    loop = asyncio.get_running_loop()
    for topic in sorted({m.topic for m in items}):
        try:
            await loop.run_in_executor(None, functools.partial(
                producer.list_topics, topic, timeout=_DELIVERY_TIMEOUT_MS / 1000))
        except KafkaException as exc:
            raise SendFailed(f"Kafka at {settings.kafka.bootstrap}: {exc}") from exc
    report = SendReport()
    t0 = loop.time()
    async for intended_ms, msg in paced(items, rate):
        while True:
            try:
                producer.produce(msg.topic, msg.value, msg.key, on_delivery=delivered,
                                 timestamp=int(intended_ms))
                break
            except BufferError:  # its local queue is full: let deliveries drain it
                await loop.run_in_executor(None, producer.poll, 0.05)
            except KafkaException as exc:  # refused before sending (e.g. too large)
                raise SendFailed(f"Kafka refused a record for {msg.topic}: "
                                 f"{exc.args[0].str()} ({acked} of {len(items)} sent)") from exc
        producer.poll(0)  # serve delivery reports without blocking the loop
        report.by_topic[msg.topic] = report.by_topic.get(msg.topic, 0) + 1
    try:
        left = await loop.run_in_executor(None, producer.flush, _DELIVERY_TIMEOUT_MS / 1000)
    except KafkaException as exc:
        raise SendFailed(f"Kafka at {settings.kafka.bootstrap}: {exc} "
                         f"({acked} of {len(items)} sent)") from exc
    if left or failures:
        reason = failures[0] if failures else f"{left} records still unacknowledged"
        raise SendFailed(f"Kafka at {settings.kafka.bootstrap} did not acknowledge "
                         f"{len(failures) + left} records: {reason} "
                         f"({acked} of {len(items)} sent)")
    report.sent = sum(report.by_topic.values())
    report.seconds = loop.time() - t0
    return report
