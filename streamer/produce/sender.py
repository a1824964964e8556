"""Send JSON payloads to Kafka with a progress bar, counting what the broker acknowledged.

A stalled or restarting broker is waited out: a record the producer could not queue is
retried with backoff, and records in flight are retried by the idempotent producer
itself, for up to ``STREAMER_PRODUCE_DEADLINE_S``; past it ``ProduceGaveUp`` says how many
were sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streamer.kafka import make_producer
from streamer.kafka.security import start_client
from streamer.produce.pacing import paced
from streamer.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes


@dataclass
class SendReport:
    sent: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class ProduceGaveUp(RuntimeError):
    """The broker took or acknowledged no records for the whole produce deadline."""

    def __init__(self, settings: Settings, what: str, sent: int, total: int | None) -> None:
        self.sent = sent
        of = f" of {total}" if total is not None else ""
        super().__init__(
            f"Kafka at {settings.kafka.bootstrap} {what} for {settings.produce.deadline_s:g}s "
            f"(STREAMER_PRODUCE_DEADLINE_S): gave up, {sent}{of} messages sent"
        )


def _acknowledged(futures: Iterable[asyncio.Future[Any]]) -> int:
    return sum(1 for f in futures if f.done() and not f.cancelled() and f.exception() is None)


async def _queue(producer: AIOKafkaProducer, settings: Settings, msg: Outgoing,
                 timestamp_ms: int, sent: int, total: int | None) -> asyncio.Future[Any]:
    """``producer.send``, retried with backoff while the broker takes nothing.

    A record ``send`` did not queue was never handed to the producer, so sending it
    again cannot write it twice.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    backoff = settings.produce.retry_backoff_s
    while True:
        left = settings.produce.deadline_s - (loop.time() - start)
        try:
            fut: asyncio.Future[Any] = await asyncio.wait_for(
                producer.send(msg.topic, msg.value, key=msg.key, timestamp_ms=timestamp_ms),
                timeout=left,
            )
            return fut
        except (KafkaTimeoutError, TimeoutError):
            pass
        if loop.time() - start + backoff >= settings.produce.deadline_s:
            raise ProduceGaveUp(settings, "took no records", sent, total)
        log.info("Kafka at %s took no record for %.0fs; retrying in %.1fs",
                 settings.kafka.bootstrap, loop.time() - start, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, settings.produce.retry_backoff_max_s)


async def _wait_acked(settings: Settings, pending: list[asyncio.Future[Any]], sent: int,
                      total: int | None) -> None:
    """Wait for every future in ``pending``; raise the first send error, or ProduceGaveUp
    when some are still unacknowledged after the deadline (the producer keeps retrying
    them meanwhile)."""
    if not pending:
        return
    _, waiting = await asyncio.wait(pending, timeout=settings.produce.deadline_s)
    if waiting:
        raise ProduceGaveUp(settings, "acknowledged no records", sent + _acknowledged(pending),
                            total)
    for f in pending:
        f.result()


async def send_all(
    settings: Settings,
    messages: Iterable[Outgoing],
    *,
    rate: float | None,
    total: int | None = None,
    progress: bool = True,
    max_in_flight: int = 2_000,
) -> SendReport:
    """Send ``messages`` at ``rate`` msg/s (None: as fast as possible) and wait until the
    broker acknowledged each; raise ProduceGaveUp when it stalls past the deadline."""
    producer = make_producer(settings)
    try:
        await start_client(settings.kafka, producer)
    except BaseException:
        await producer.stop()  # a producer that never started still holds its client
        raise
    report = SendReport()
    pending: list[asyncio.Future[Any]] = []
    acked = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    bar = Progress(
        TextColumn("[bold]producing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        disable=not progress,
    )
    try:
        with bar:
            task = bar.add_task("send", total=total)
            async for intended_ms, msg in paced(messages, rate):
                # The record timestamp is the intended send time: latency is measured
                # from when the message should have left, not when it managed to.
                pending.append(await _queue(producer, settings, msg, int(intended_ms),
                                            acked + _acknowledged(pending), total))
                report.by_topic[msg.topic] = report.by_topic.get(msg.topic, 0) + 1
                if len(pending) >= max_in_flight:
                    await _wait_acked(settings, pending, acked, total)
                    bar.advance(task, len(pending))
                    acked += len(pending)
                    pending.clear()
            await _wait_acked(settings, pending, acked, total)
            bar.advance(task, len(pending))
    finally:
        # Everything reported sent is acknowledged by now; after giving up, stop() would
        # wait on the stalled broker for the records still in flight, so it is bounded.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(producer.stop(), timeout=settings.kafka.request_timeout_s)
    report.sent = sum(report.by_topic.values())
    report.seconds = loop.time() - t0
    return report
