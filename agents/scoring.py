"""The scoring agent: one input topic's micro-batches through ``streamer.batch.loop``.

This module binds the framework-free scoring loop to Faust: batches come from
``agents.batching.VariableBatches``, records go out through Faust's producer inside the
source partition's transaction, writes run under the commit gate, and a failed batch
crashes the app unacked (the supervisor's restart replays it from the committed offsets).

Not Faust's ``take_events``: when the consumer stops mid-batch (a crash on a Redis
refusal), its ``finally`` acks the failed batch, so the restart would skip those messages.
Batch limits are fixed (``STREAMER_BATCH_MODE=fixed``) or revised after every batch by an
``AdaptiveBatcher`` from its end-to-end latencies, service time and backlog
(``STREAMER_BATCH_MODE=adaptive``).
"""

from __future__ import annotations

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
from streamer.batch import RawRecord
from streamer.batch.adaptive import AdaptiveBatcher, AdaptiveFeedback
from streamer.batch.loop import ScoringLoop
from streamer.schemas.headers import Headers

log = logging.getLogger(__name__)


class Publisher:
    """The loop's sink: sends output records inside the source partition's transaction."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def _transactional_id(self, source: TP) -> str | None:
        if not self.app.in_transaction:
            return None
        group = self.app.assignor.group_for_topic(source.topic)
        return f"{self.app.conf.id}-{group}-{source.partition}"

    async def send(self, source: tuple[str, int], topic: str, key: bytes | None,
                   value: bytes, headers: Headers | None = None) -> Awaitable[Any]:
        return await self.app.producer.send(
            topic, key, value, None, None, headers,
            transactional_id=self._transactional_id(TP(*source)),
        )


def _records(runtime: Runtime, events: list[EventT]) -> list[RawRecord]:
    out = []
    for e in events:
        m = e.message
        ts = int(m.timestamp * 1000) if m.timestamp else None
        stamped = runtime.stamps.pop((m.topic, m.partition, m.offset))
        out.append(RawRecord(
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            value=m.value,
            timestamp_ms=ts,
            consumed_ms=stamped[0] if stamped is not None else None,
            ready_ms=stamped[1] if stamped is not None else None,
        ))
    return out


def make_scoring_agent(
    app: faust.App, runtime: Runtime, alerts: AlertHook
) -> Callable[[faust.StreamT[bytes]], Awaitable[None]]:
    pub = Publisher(app)
    s = runtime.settings

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

    async def score(stream: faust.StreamT[bytes]) -> None:
        lag = ConsumerLag(app, runtime.metrics.consumer_lag)  # this agent's partitions
        topic = _topic_of(stream)

        def ready(record_topic: str) -> None:
            # The stream is done with a record and takes the next: the 'ready' stamp.
            runtime.stamps.mark_ready(record_topic, runtime.clock.now_ms())

        feedback: AdaptiveFeedback | None = None
        if s.batching.mode == "adaptive":
            m = runtime.metrics

            def show(size: int, wait_s: float) -> None:
                m.batch_size_limit.labels(topic).set(size)
                m.batch_wait_limit.labels(topic).set(wait_s)

            batcher = AdaptiveBatcher.from_settings(s.batching, s.adaptive)
            feedback = AdaptiveFeedback(batcher, show, topic)
            batches = VariableBatches(stream, feedback.batcher.limits, s.batching.max_wait_s,
                                      on_ready=ready)
        else:
            fixed = (s.batching.max_size, s.batching.max_wait_s)
            batches = VariableBatches(stream, lambda: fixed, s.batching.max_wait_s,
                                      on_ready=ready)
        loop: ScoringLoop[EventT] = ScoringLoop(
            runtime.processor, pub,
            records=lambda events: _records(runtime, events),
            stop=stop,
            write_lock=runtime.gate.batch,
            after_write=alerts.after_batch,  # one Redis round trip; never raises
            lag=lag.after_batch,
            feedback=feedback,
            clock=runtime.clock,
        )
        await loop.run(batches)

    return score


def _topic_of(stream: faust.StreamT[bytes]) -> str:
    try:
        return str(stream.channel.get_topic_name())  # type: ignore[attr-defined]
    except Exception:
        return "unknown"
