"""Send JSON payloads to Kafka with a progress bar, counting what the broker acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streamer.kafka import make_producer
from streamer.kafka.security import start_client
from streamer.produce.pacing import paced
from streamer.settings import Settings


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


async def send_all(
    settings: Settings,
    messages: Iterable[Outgoing],
    *,
    rate: float | None,
    total: int | None = None,
    progress: bool = True,
    max_in_flight: int = 2_000,
) -> SendReport:
    producer = make_producer(settings)
    await start_client(settings, producer)
    report = SendReport()
    pending: list[asyncio.Future[object]] = []
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
                fut = await producer.send(
                    msg.topic, msg.value, key=msg.key, timestamp_ms=int(intended_ms)
                )
                pending.append(fut)
                report.by_topic[msg.topic] = report.by_topic.get(msg.topic, 0) + 1
                if len(pending) >= max_in_flight:
                    await asyncio.gather(*pending)
                    bar.advance(task, len(pending))
                    pending.clear()
            await asyncio.gather(*pending)
            bar.advance(task, len(pending))
        await producer.flush()
    finally:
        await producer.stop()
    report.sent = sum(report.by_topic.values())
    report.seconds = loop.time() - t0
    return report
