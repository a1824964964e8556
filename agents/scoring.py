"""The scoring agent: micro-batches of one input topic through the batch processor.

Two stages per batch, overlapped across batches:

1. **score** (no side effect outside the process): decode, tokenize, infer, off-loop;
2. **write**, under the commit gate, in batch order: Redis aggregates -> scored records
   and dead letters to Kafka -> wait for the broker -> the alert detector -> ack.

Batch N+1 is scored while batch N's writes are in flight (at most one batch writing at
a time), so the CPU infers while the network waits. Offsets still never get committed
past what Redis and Kafka have acknowledged: a batch is acked only at the end of its
own write stage, and a batch that fails there stops the worker unacked, with the next
one (scored, never written) unacked behind it.

Batches come from ``agents.batching.VariableBatches``, with fixed limits
(``batch_mode=fixed``) or limits an ``AdaptiveBatcher`` revises after every batch from
its end-to-end latencies, service time and backlog (``batch_mode=adaptive``). Not
Faust's ``take_events``: when the consumer stops mid-batch (a crash on a Redis refusal),
its ``finally`` acks the failed batch, so the restart would skip those messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.types import TP, EventT

from agents.alerting import AlertHook
from agents.batching import VariableBatches
from agents.lag import ConsumerLag
from agents.runtime import Runtime
from streamer.aggregate import AggregateUnavailable
from streamer.batch import BatchOutput, RawRecord
from streamer.batch.adaptive import AdaptiveBatcher

log = logging.getLogger(__name__)


class Publisher:
    """Sends output records inside the source partition's Kafka transaction."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def _transactional_id(self, source: TP) -> str | None:
        if not self.app.in_transaction:
            return None
        group = self.app.assignor.group_for_topic(source.topic)
        return f"{self.app.conf.id}-{group}-{source.partition}"

    async def send(self, source: TP, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        return await self.app.producer.send(
            topic, key, value, None, None, None, transactional_id=self._transactional_id(source)
        )


def _records(runtime: Runtime, events: list[EventT]) -> list[RawRecord]:
    out = []
    for e in events:
        m = e.message
        ts = int(m.timestamp * 1000) if m.timestamp else None
        out.append(RawRecord(
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            value=m.value,
            timestamp_ms=ts,
            consumed_ms=runtime.stamps.pop((m.topic, m.partition, m.offset)),
        ))
    return out


async def publish(runtime: Runtime, pub: Publisher, out: BatchOutput) -> None:
    s = runtime.settings
    pending: list[Awaitable[Any]] = []
    for ev in out.scored:
        tp = TP(ev.origin.topic, ev.origin.partition)
        pending.append(await pub.send(
            tp, s.topic_scored, ev.id.encode(), ev.model_dump_json().encode()
        ))
    for d in out.dead:
        key = f"{d.topic}:{d.partition}:{d.offset}".encode()
        pending.append(await pub.send(
            TP(d.topic, d.partition), s.dlq_topic(d.topic), key, d.model_dump_json().encode()
        ))
    await asyncio.gather(*pending)


def make_scoring_agent(
    app: faust.App, runtime: Runtime, alerts: AlertHook
) -> Callable[[faust.StreamT[bytes]], Awaitable[None]]:
    pub = Publisher(app)
    s = runtime.settings

    async def score(stream: faust.StreamT[bytes]) -> None:
        controller: AdaptiveBatcher | None = None
        lag = ConsumerLag(app, runtime.metrics.consumer_lag)  # this agent's partitions
        topic = _topic_of(stream)
        if s.batch_mode == "adaptive":
            controller = AdaptiveBatcher.from_settings(s)
            batches = VariableBatches(stream, controller.limits, s.batch_max_wait_s)
            _show_limits(runtime, topic, controller)
        else:
            fixed = (s.batch_max_size, s.batch_max_wait_s)
            batches = VariableBatches(stream, lambda: fixed, s.batch_max_wait_s)

        async def stop(exc: Exception) -> None:
            if isinstance(exc, AggregateUnavailable):
                # Stop without acking: nothing past Redis's last write is committed,
                # and a restart resumes from there.
                log.critical("stopping the worker: %s", exc)
                if not exc.transient:
                    runtime.needs_operator = str(exc)
            else:
                # Never leave a live process with a dead agent: stop it unacked, and
                # the supervisor's restart replays the batch from the committed offsets.
                log.critical("stopping the worker after an unexpected error in a batch: "
                             "%r", exc, exc_info=True)
            await app.crash(exc)

        observed_at: float | None = None  # ms: when the controller last heard of a batch

        async def write(events: list[EventT], out: BatchOutput, started: float) -> bool:
            """Stage 2 of one batch; False when it failed and the worker is stopping."""
            nonlocal observed_at
            async with runtime.gate.batch():
                try:
                    await runtime.processor.aggregate(out)
                    await publish(runtime, pub, out)
                    await alerts.after_batch(out)  # one Redis round trip; never raises
                except Exception as exc:
                    await stop(exc)
                    return False
                await batches.ack(events)
            behind = lag.after_batch(events)
            if controller is not None:
                now, before = runtime.clock.now_ms(), controller.limits()
                decision = controller.observe(
                    len(events), _end_to_end_ms(out), now - started,
                    max(behind, batches.backlog()),
                    None if observed_at is None else (now - observed_at) / 1000.0,
                )
                observed_at = now
                if controller.limits() != before:
                    _show_limits(runtime, topic, controller)
                    log.debug("batch limits %s: size %d, wait %.1f ms (p99 %s ms, %s)",
                              topic, decision.size, decision.wait_s * 1000,
                              "-" if decision.p99_ms is None else f"{decision.p99_ms:.1f}",
                              decision.reason)
            return True

        writing: asyncio.Task[bool] | None = None
        try:
            async for events in batches:
                started = runtime.clock.now_ms()
                try:
                    out = await runtime.processor.score(_records(runtime, events))
                except Exception as exc:
                    await stop(exc)
                    return
                # Writes stay in batch order: this batch's wait for the previous one's
                # counts in its aggregate stage.
                previous, writing = writing, None  # awaited here: its error raises here
                if previous is not None and not await previous:
                    return
                writing = asyncio.create_task(write(events, out, started))
        finally:
            if writing is not None:
                # Let the last batch's writes finish (and ack) rather than replay them;
                # nothing awaits this task after us, so its error is logged here or lost.
                await asyncio.wait([writing])
                if not writing.cancelled() and (failed := writing.exception()) is not None:
                    log.critical("the last batch's write stage failed: %r", failed, exc_info=failed)

    return score


def _end_to_end_ms(out: BatchOutput) -> list[float]:
    """Record timestamp -> Redis ack of each scored event (the latency recorder's end_to_end)."""
    return [ev.stamps.aggregated - ev.stamps.produced for ev in out.scored
            if ev.stamps.aggregated is not None and ev.stamps.produced is not None]


def _topic_of(stream: faust.StreamT[bytes]) -> str:
    try:
        return str(stream.channel.get_topic_name())  # type: ignore[attr-defined]
    except Exception:
        return "unknown"


def _show_limits(runtime: Runtime, topic: str, controller: AdaptiveBatcher) -> None:
    size, wait_s = controller.limits()
    runtime.metrics.batch_size_limit.labels(topic).set(size)
    runtime.metrics.batch_wait_limit.labels(topic).set(wait_s)
