"""Delivery of claimed alerts from the Redis outbox: the alerts topic, then the webhook.

One worker at a time holds a short delivery lease and sends the outbox in claim order,
waiting for Kafka's acknowledgement of each record before the next, so the alerts of
one scope key reach their partition in order. Only after the acknowledgement is an
alert marked delivered; a crash in between means it is sent again by the next pass
(at least once: consumers drop repeats by ``alert_id``). The pass runs when the local
evaluator claims something and every ``STREAMER_ALERT_RESEND_INTERVAL_S`` in any case, which is
what re-sends alerts a crashed or partitioned worker left behind.

Webhook POSTs run in their own tasks (bounded), so a slow or failing endpoint delays
neither the alerts topic nor the stream; after its retries an alert is dropped from
the webhook outbox and counted in ``streamer_alert_webhook_failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial

from aiokafka import AIOKafkaProducer

from streamer.alert.metrics import AlertMetrics
from streamer.alert.store import AlertStore
from streamer.alert.webhook import WebhookSink
from streamer.latency.histograms import LatencyRecorder
from streamer.schemas.alerts import AlertRecord
from streamer.schemas.headers import record_headers
from streamer.settings import AlertSettings

log = logging.getLogger(__name__)
_MAX_WEBHOOK_TASKS = 8


def raise_if_cancelled() -> None:
    """Raise the current task's pending cancellation, if something swallowed it.

    On Python 3.11 ``asyncio.wait_for`` returns the result instead of raising when a
    cancellation races with the inner operation finishing, and redis-py sends every
    command through it (socket timeouts). A loop of Redis calls could then outlive its
    cancellation for good; the request count (``Task.cancelling``) still shows it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait for ``event`` (then clear it) or ``timeout``, whichever comes first; first,
    raise a cancellation that was swallowed since the last wait (see above).

    asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
    that races with the inner wait finishing, and a background loop would never stop.
    """
    raise_if_cancelled()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    event.clear()


class Dispatcher:
    def __init__(self, alerts: AlertSettings, topic: str, store: AlertStore, *,
                 worker_id: str, producer_factory: Callable[[], AIOKafkaProducer],
                 metrics: AlertMetrics | None = None,
                 webhook: WebhookSink | None = None,
                 latency: LatencyRecorder | None = None) -> None:
        self.alerts = alerts
        self.topic = topic  # the alerts topic
        self.latency = latency
        self.store = store
        self.worker_id = worker_id
        self.metrics = metrics or AlertMetrics()
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self.webhook = webhook
        self._wake = asyncio.Event()
        self._webhook_tasks: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever: on wake-up, and every resend interval."""
        while True:
            try:
                await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.errors.labels("deliver").inc()
                log.exception("alert delivery pass failed; retrying")
            await wait_event(self._wake, self.alerts.resend_interval_s)

    async def deliver_once(self) -> int:
        """One pass over the outbox, if this worker holds the lease. Returns records sent."""
        lease_ms = int(self.alerts.delivery_lease_s * 1000)
        if not await self.store.lease(self.worker_id, lease_ms):
            return 0
        sent = 0
        for rec in await self.store.pending("kafka"):
            if not await self._send_kafka(rec):
                break  # keep the order: the next pass starts again from this record
            await self.store.delivered("kafka", rec.alert_id)
            sent += 1
        if self.webhook is not None:
            await self._start_webhooks()
        return sent

    async def _send_kafka(self, rec: AlertRecord) -> bool:
        try:
            if self._producer is None:
                producer = self._producer_factory()
                async with asyncio.timeout(self.alerts.send_timeout_s):
                    await producer.start()
                self._producer = producer
            async with asyncio.timeout(self.alerts.send_timeout_s):
                await self._producer.send_and_wait(
                    self.topic, rec.model_dump_json().encode(), key=rec.kafka_key,
                    headers=record_headers("alert"),
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.metrics.delivery_errors.labels("kafka").inc()
            log.warning("alert %s not acknowledged by Kafka (%s); will retry", rec.alert_id, exc)
            await self._reset_producer()
            return False
        self.metrics.delivered.labels("kafka").inc()
        if rec.first_event_produced_at is not None and rec.kind == "fired":
            # The alert's 'appended' stamp: Kafka acknowledged it. Wall clock, as the first
            # event's record timestamp comes from its producer.
            seconds = time.time() - rec.first_event_produced_at.timestamp()
            self.metrics.latency.observe(max(0.0, seconds))
            if self.latency is not None:
                self.latency.record_alert(seconds * 1000.0)
        return True

    async def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await producer.stop()

    async def _start_webhooks(self) -> None:
        free = _MAX_WEBHOOK_TASKS - len(self._webhook_tasks)
        if free <= 0:
            return
        for rec in await self.store.pending("webhook", limit=free + len(self._webhook_tasks)):
            if rec.alert_id in self._webhook_tasks:
                continue
            if len(self._webhook_tasks) >= _MAX_WEBHOOK_TASKS:
                break
            task = asyncio.create_task(self._post(rec))
            self._webhook_tasks[rec.alert_id] = task
            task.add_done_callback(partial(self._webhook_done, rec.alert_id))

    def _webhook_done(self, alert_id: str, _task: asyncio.Task[None]) -> None:
        self._webhook_tasks.pop(alert_id, None)

    async def _post(self, rec: AlertRecord) -> None:
        assert self.webhook is not None
        ok, failures = await self.webhook.post(rec.alert_id, rec.model_dump_json().encode())
        if failures:
            self.metrics.delivery_errors.labels("webhook").inc(failures)
        if ok:
            self.metrics.delivered.labels("webhook").inc()
        else:
            self.metrics.webhook_failed.inc()
            log.error("webhook delivery of %s failed after %d attempts; dropped", rec.alert_id,
                      failures)
        try:
            await self.store.delivered("webhook", rec.alert_id)
        except Exception:  # Redis hiccup: it is retried (once more) by the next pass
            self.metrics.errors.labels("webhook").inc()

    async def close(self) -> None:
        for task in list(self._webhook_tasks.values()):
            task.cancel()
        await asyncio.gather(*self._webhook_tasks.values(), return_exceptions=True)
        await self._reset_producer()
        if self.webhook is not None:
            await self.webhook.close()
