"""Alerting inside a worker: observe batches, evaluate in the background, deliver.

``after_batch`` is the only call on the stream's path: one Redis round trip (partition
progress + evidence), then it wakes the evaluator and returns. Evaluation (bounded
per pass) and delivery (Kafka, webhook) run in their own tasks, so neither a burst of
closed buckets nor a slow sink holds the stream up; their errors are logged and
counted, never raised into the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry

from streamer.aggregate.store import TrendStore
from streamer.alert.delivery import Dispatcher, raise_if_cancelled, wait_event
from streamer.alert.engine import AlertEngine, Evaluation
from streamer.alert.metrics import AlertMetrics
from streamer.alert.webhook import WebhookSink
from streamer.kafka import make_producer
from streamer.kafka.security import client_options, start_client
from streamer.latency.histograms import LatencyRecorder
from streamer.schemas import ScoredEvent
from streamer.settings import Settings

log = logging.getLogger(__name__)


async def input_partitions(settings: Settings) -> set[str]:
    """``topic:partition`` of every input partition, from the broker's metadata."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap,
                                **client_options(settings.kafka))
    await start_client(settings.kafka, admin)
    try:
        topics = await admin.describe_topics(list(settings.topics.inputs))
    finally:
        await admin.close()
    return {f"{t['topic']}:{p['partition']}" for t in topics if not t["error_code"]
            for p in t["partitions"]}


class AlertService:
    def __init__(self, settings: Settings, trends: TrendStore, *, clock_ms: Callable[[], float],
                 worker_id: str, registry: CollectorRegistry | None = None,
                 producer_factory: Callable[[], AIOKafkaProducer] | None = None,
                 latency: LatencyRecorder | None = None) -> None:
        self.settings = settings
        self.metrics = AlertMetrics(registry)
        self.engine = AlertEngine(settings.alerts, trends, clock_ms=clock_ms, worker_id=worker_id,
                                  metrics=self.metrics)
        webhook = None
        if settings.alerts.webhook_url:
            secret = settings.alerts.webhook_secret
            webhook = WebhookSink(
                settings.alerts.webhook_url,
                secret.get_secret_value() if secret else None,
                timeout_s=settings.alerts.webhook_timeout_s,
                retries=settings.alerts.webhook_retries,
                backoff_s=settings.alerts.webhook_backoff_s,
            )
        self.dispatcher = Dispatcher(
            settings.alerts, settings.topics.alerts, self.engine.store, worker_id=worker_id,
            producer_factory=producer_factory or (lambda: make_producer(settings)),
            metrics=self.metrics, webhook=webhook, latency=latency)
        self._wake = asyncio.Event()

    async def after_batch(self, scored: Sequence[ScoredEvent]) -> None:
        """Record the batch's event-time progress and negative messages; never raises."""
        if not scored:
            return
        try:
            await self.engine.observe(scored)
        except Exception as exc:
            # Alerts may come late (the watermark waits) but the stream goes on.
            self.metrics.errors.labels("observe").inc()
            log.warning("alerting could not record a batch: %s", exc)
        self._wake.set()

    async def evaluate_once(self) -> Evaluation:
        result = await self.engine.evaluate()
        if result.alerts:
            self.dispatcher.wake()
        return result

    async def run_evaluator(self) -> None:
        """Evaluate when a batch arrived, and every tick (idle partitions, stream ends)."""
        if not self.engine.events.expected:
            try:
                async with asyncio.timeout(30):
                    tags = await input_partitions(self.settings)
                self.engine.events.expect(tags, self.engine.clock_ms())
            except Exception as exc:  # the watermark then follows the partitions seen so far
                log.warning("could not read the input partitions from Kafka: %s", exc)
        while True:
            behind = False
            try:
                behind = (await self.evaluate_once()).behind
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.errors.labels("evaluate").inc()
                log.warning("alert evaluation failed (retrying): %s", exc)
            if behind:
                raise_if_cancelled()
                await asyncio.sleep(0)  # catching up: let the stream run between passes
                continue
            await wait_event(self._wake, self.settings.alerts.tick_s)

    async def run_dispatcher(self) -> None:
        await self.dispatcher.run()

    async def close(self) -> None:
        await self.dispatcher.close()
