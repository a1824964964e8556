"""Where a batch's output records go: a framework-free sink and the one publish step.

The worker's sink is Faust's transactional producer (``agents/scoring.py``); anything
with ``send`` works, so the write stage runs and is tested without the framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from streamer.batch.processor import BatchOutput
from streamer.schemas.headers import Headers, record_headers


class Sink(Protocol):
    async def send(self, source: tuple[str, int], topic: str, key: bytes | None,
                   value: bytes, headers: Headers | None = None) -> Awaitable[Any]:
        """Queue one record produced on behalf of input partition ``source``, with Kafka
        ``headers``; the returned awaitable completes when the broker has it."""
        ...


async def publish(sink: Sink, out: BatchOutput, scored_topic: str,
                  dlq_topic: Callable[[str], str]) -> None:
    """Send a batch's scored events and dead letters, with their headers
    (``streamer.schemas.headers``), then wait until the broker has all."""
    pending: list[Awaitable[Any]] = []
    for ev in out.scored:
        source = (ev.origin.topic, ev.origin.partition)
        pending.append(await sink.send(source, scored_topic, ev.id.encode(),
                                       ev.model_dump_json().encode(),
                                       record_headers("scored", model=ev.model)))
    for d in out.dead:
        key = f"{d.topic}:{d.partition}:{d.offset}".encode()
        pending.append(await sink.send((d.topic, d.partition), dlq_topic(d.topic), key,
                                       d.model_dump_json().encode(),
                                       record_headers("dead-letter", reason=d.reason)))
    await asyncio.gather(*pending)
