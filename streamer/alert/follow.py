"""Read alert records back from the alerts topic, each alert id once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from streamer.kafka.security import client_options, start_client
from streamer.schemas.alerts import AlertRecord
from streamer.settings import Settings


async def read_alerts(settings: Settings, *, follow: bool, from_beginning: bool,
                      idle_timeout_s: float | None = None) -> AsyncIterator[AlertRecord]:
    """Alerts from the alerts topic (read_committed), each alert id once."""
    consumer = AIOKafkaConsumer(
        settings.topics.alerts, bootstrap_servers=settings.kafka.bootstrap, group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        isolation_level="read_committed", enable_auto_commit=False,
        **client_options(settings.kafka),
    )
    try:
        await start_client(settings.kafka, consumer)
    except BaseException:
        await consumer.stop()  # a consumer that never started still holds its client
        raise
    seen: set[str] = set()
    try:
        end: dict[TopicPartition, int] = {}
        if not follow:
            for _ in range(50):  # the assignment arrives with the first metadata
                if consumer.assignment():
                    break
                await asyncio.sleep(0.1)
            end = dict(await consumer.end_offsets(list(consumer.assignment())))
        idle = 0.0
        while True:
            if not follow and await _caught_up(consumer, end):
                return
            batch = await consumer.getmany(timeout_ms=500)
            records = [r for rs in batch.values() for r in rs]
            idle = 0.0 if records else idle + 0.5
            if idle_timeout_s is not None and idle >= idle_timeout_s:
                return
            for r in records:
                try:
                    rec = AlertRecord.model_validate_json(r.value or b"")
                except ValidationError:
                    continue  # not ours (or a newer schema): skip, keep reading
                if rec.alert_id in seen:
                    continue  # at-least-once delivery: repeats are dropped by id
                seen.add(rec.alert_id)
                if len(seen) > 100_000:
                    seen.clear()
                yield rec
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True
