"""Delivery from the Redis outbox: the alerts topic (real Kafka) and the webhook sink
(local HTTP servers on 127.0.0.1: one that answers, one that times out, one that 500s)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from alert_support import alert_settings, claim, make_events, record

from streamer.aggregate import TrendStore
from streamer.alert.delivery import Dispatcher, wait_event
from streamer.alert.service import AlertService
from streamer.alert.store import AlertStore
from streamer.alert.webhook import ID_HEADER, SIGNATURE_HEADER, WebhookSink, verify_signature
from streamer.kafka import ensure_topics, make_producer
from streamer.latency import LatencyRecorder
from streamer.latency.report import alert_row
from streamer.settings import Settings

SECRET = "s3cret"
async def read_alerts(bootstrap: str, topic: str, expected: int,
                      timeout: float = 30.0) -> list[tuple[bytes, dict[str, Any]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    out: list[tuple[bytes, dict[str, Any]]] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                out += [(r.key or b"", orjson.loads(r.value or b"{}")) for r in recs]
    finally:
        await consumer.stop()
    return out


@pytest.fixture
async def env(redis_url: str, kafka_bootstrap: str) -> AsyncIterator[tuple[Settings, TrendStore]]:
    settings = alert_settings(
        redis_url, KAFKA_BOOTSTRAP=kafka_bootstrap, topic_alerts=f"alerts-{uuid.uuid4().hex[:8]}",
        alert_webhook_timeout_s=0.5, alert_webhook_retries=2, alert_webhook_backoff_s=0.05,
        alert_webhook_secret=SECRET,
    )
    await ensure_topics(settings, [settings.topics.alerts], partitions=2)
    trends = TrendStore.connect(settings.redis, settings.aggregate)
    yield settings, trends
    await trends.close()


def dispatcher(settings: Settings, store: AlertStore, **options: Any) -> Dispatcher:
    """The worker's dispatcher for ``settings``: its producer unless the test brings one."""
    options.setdefault("producer_factory", lambda: make_producer(settings))
    return Dispatcher(settings.alerts, settings.topics.alerts, store, **options)


def store_of(settings: Settings, trends: TrendStore) -> AlertStore:
    return AlertStore(trends.redis, settings.redis.key_prefix,
                      claim_ttl_s=settings.alerts.claim_ttl_s)


async def test_outbox_goes_to_the_alerts_topic_in_order_keyed_by_scope_key(
    env: tuple[Settings, TrendStore],
) -> None:
    settings, trends = env
    store = store_of(settings, trends)
    records = [record(0), record(0, kind="resolved"), record(1, key="CVX"), record(2)]
    await claim(store, records, webhook=False)
    disp = dispatcher(settings, store, worker_id="w1")
    try:
        assert await disp.deliver_once() == 4
    finally:
        await disp.close()
    got = await read_alerts(settings.kafka.bootstrap, settings.topics.alerts, 4)
    xom = [v["alert_id"] for k, v in got if k == b"ticker:XOM"]
    assert xom == [records[0].alert_id, records[1].alert_id, records[3].alert_id]
    assert {k for k, _ in got} == {b"ticker:XOM", b"ticker:CVX"}
    assert await store.pending_count("kafka") == 0
    assert await store.claim_status(records[0].alert_id) == "delivered"


async def test_a_fired_alert_appended_to_kafka_records_its_alert_latency(
    env: tuple[Settings, TrendStore],
) -> None:
    """Alert latency: the spike's first event (record timestamp) -> the alert's Kafka ack,
    into the worker's HDR histograms (streamer latency, row 'alert'). Only fired alerts."""
    settings, trends = env
    store = store_of(settings, trends)
    produced = datetime.now(UTC) - timedelta(seconds=7)
    fired = record(0).model_copy(update={"first_event_produced_at": produced})
    resolved = record(0, kind="resolved").model_copy(
        update={"first_event_produced_at": produced})
    await claim(store, [fired, resolved, record(1, key="CVX")], webhook=False)
    latency = LatencyRecorder()
    disp = dispatcher(settings, store, worker_id="w1", latency=latency)
    try:
        assert await disp.deliver_once() == 3
    finally:
        await disp.close()
    row = alert_row(latency.histograms)
    assert row is not None and row.count == 1  # the CVX record has no produced time
    assert 7_000 <= row.p50_ms < 37_000


async def test_an_unacknowledged_alert_stays_in_the_outbox_and_is_resent(
    env: tuple[Settings, TrendStore],
) -> None:
    settings, trends = env
    store = store_of(settings, trends)
    await claim(store, [record(0), record(1)], webhook=False)

    def broken() -> AIOKafkaProducer:
        return AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", request_timeout_ms=300)

    down = dispatcher(settings.replace(**{"alert_send_timeout_s": 1.0}), store,
                      worker_id="w1", producer_factory=broken)
    try:
        assert await down.deliver_once() == 0  # "crash" before any acknowledgement
    finally:
        await down.close()
    assert await store.pending_count("kafka") == 2
    assert down.metrics.delivery_errors.labels("kafka")._value.get() >= 1
    # A later pass (here: another worker after the lease expired) delivers them.
    await trends.redis.delete(store.lease_key)
    up = dispatcher(settings, store, worker_id="w2")
    try:
        assert await up.deliver_once() == 2
    finally:
        await up.close()
    got = await read_alerts(settings.kafka.bootstrap, settings.topics.alerts, 2)
    assert [v["alert_id"] for _, v in got] == [record(0).alert_id, record(1).alert_id]


async def test_one_worker_at_a_time_delivers(env: tuple[Settings, TrendStore]) -> None:
    settings, trends = env
    store = store_of(settings, trends)
    assert await store.lease("w1", 10_000)
    await claim(store, [record(0)], webhook=False)
    other = dispatcher(settings, store, worker_id="w2")
    try:
        assert await other.deliver_once() == 0
        assert await store.pending_count("kafka") == 1
    finally:
        await other.close()
    assert await store.lease("w1", 10_000)  # the holder renews


# --- webhook ------------------------------------------------------------------------------
class Endpoint:
    """A local HTTP server whose behaviour the test picks."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.hits: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.hits.append((dict(request.headers), body))
        if self.behaviour == "timeout":
            await asyncio.sleep(2)
        if self.behaviour == "error":
            return web.Response(status=500, text="boom")
        return web.Response(status=204)

    async def __aenter__(self) -> Endpoint:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def sink(url: str, settings: Settings) -> WebhookSink:
    return WebhookSink(url, SECRET, timeout_s=settings.alerts.webhook_timeout_s,
                       retries=settings.alerts.webhook_retries,
                       backoff_s=settings.alerts.webhook_backoff_s)


async def test_webhook_posts_a_signed_record(env: tuple[Settings, TrendStore]) -> None:
    settings, _ = env
    async with Endpoint("ok") as ep:
        hook = sink(ep.url, settings)
        body = record(0).model_dump_json().encode()
        assert await hook.post(record(0).alert_id, body) == (True, 0)
        await hook.close()
    (headers, got), = ep.hits
    assert got == body and headers[ID_HEADER] == record(0).alert_id
    assert verify_signature(SECRET.encode(), got, headers[SIGNATURE_HEADER])
    assert not verify_signature(b"wrong", got, headers[SIGNATURE_HEADER])
    assert not verify_signature(SECRET.encode(), got + b" ", headers[SIGNATURE_HEADER])
    old = headers[SIGNATURE_HEADER]
    assert not verify_signature(SECRET.encode(), got, old, now=time.time() + 3600)


@pytest.mark.parametrize("behaviour", ["timeout", "error"])
async def test_a_failing_webhook_is_retried_then_counted_failed(
    env: tuple[Settings, TrendStore], behaviour: str
) -> None:
    settings, trends = env
    settings = settings.replace(**{"alert_webhook_url": "set-below"})
    store = store_of(settings, trends)
    async with Endpoint(behaviour) as ep:
        disp = dispatcher(settings, store, worker_id="w1", webhook=sink(ep.url, settings))
        try:
            await claim(store, [record(0)], webhook=True)
            assert await disp.deliver_once() == 1  # Kafka delivery is not held up
            await _until(lambda: store.pending_count("webhook"), 0, timeout=10)
        finally:
            await disp.close()
    assert len(ep.hits) == 1 + settings.alerts.webhook_retries
    assert disp.metrics.webhook_failed._value.get() == 1
    assert disp.metrics.delivery_errors.labels("webhook")._value.get() == 3
    got = await read_alerts(settings.kafka.bootstrap, settings.topics.alerts, 1)
    assert [v["alert_id"] for _, v in got] == [record(0).alert_id]


async def test_the_webhook_outbox_is_bounded(env: tuple[Settings, TrendStore]) -> None:
    settings, trends = env
    store = store_of(settings, trends)
    cursor = await store.cursor()
    result = await store.commit(
        expected_cursor=cursor, cursor=10, origin=0, changed={}, removed=[],
        alerts=[record(i) for i in range(3)], webhook=True, webhook_max_pending=2,
    )
    assert len(result.claimed) == 3 and result.webhook_dropped == 1
    assert await store.pending_count("kafka") == 3
    assert await store.pending_count("webhook") == 2


async def _until(get: Callable[[], Awaitable[int]], value: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await get() == value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {await get()} after {timeout}s")


async def test_a_waiting_loop_stops_even_when_a_library_swallowed_its_cancellation() -> None:
    """Python 3.11's asyncio.wait_for (redis-py's socket timeouts) can return instead of
    raising when a cancel races with the operation finishing. The alert loops then reach
    their next wait, which must raise the still-pending cancellation."""
    swallowed = asyncio.Event()

    async def loop() -> None:
        while True:
            try:
                await asyncio.sleep(5)  # stands in for the Redis call
            except asyncio.CancelledError:
                swallowed.set()  # what the 3.11 race does: carry on as if done
            await wait_event(asyncio.Event(), 0.05)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert swallowed.is_set()
    assert done and task.cancelled()


async def test_the_stream_is_not_held_up_by_a_hanging_webhook(
    env: tuple[Settings, TrendStore],
) -> None:
    """The whole worker-side service: batches flow at full speed while every webhook
    call hangs until its timeout; alerts still reach Kafka; failures are counted."""
    settings, trends = env
    from alert_support import apply, batches

    # A bound of its own: a hang here once stalled a CI run; the TimeoutError's traceback
    # shows which await never returned.
    async with asyncio.timeout(120), Endpoint("timeout") as ep:
        svc_settings = settings.replace(**{
            "alert_webhook_url": ep.url, "alert_resend_interval_s": 0.2, "alert_tick_s": 0.1,
        })
        svc = AlertService(svc_settings, trends, clock_ms=lambda: time.time() * 1000,
                           worker_id="w1")
        svc.engine.events.expect(["news:0", "news:1"], time.time() * 1000)
        tasks = [asyncio.create_task(svc.run_evaluator()),
                 asyncio.create_task(svc.run_dispatcher())]
        try:
            events = make_events(7, 30, spike_at_min=20, spike_per_min=80, partitions=2)
            slowest = 0.0
            for batch in batches(events, 2, 64):
                await apply(trends, batch)
                t = time.perf_counter()
                await svc.after_batch(batch)
                slowest = max(slowest, time.perf_counter() - t)
                await asyncio.sleep(0)
            await _until(lambda: svc.engine.store.pending_count("kafka"), 0, timeout=20)
            fired = svc.metrics.claimed.labels("fired", "warning")._value.get() + \
                svc.metrics.claimed.labels("fired", "major")._value.get() + \
                svc.metrics.claimed.labels("fired", "critical")._value.get()
            assert fired >= 1
            await _until(lambda: svc.engine.store.pending_count("webhook"), 0, timeout=30)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await svc.close()
    assert slowest < 0.5, f"after_batch took {slowest:.3f}s"
    assert svc.metrics.webhook_failed._value.get() >= 1
    got = await read_alerts(settings.kafka.bootstrap, settings.topics.alerts, 1)
    assert any(v["kind"] == "fired" for _, v in got)
