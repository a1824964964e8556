"""What the worker writes to Kafka carries headers (schema, schema version, content type,
model id; the reason on dead letters), and a producer that adds a field does not get its
records dead-lettered: read back from a real broker, written by a real worker process."""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Iterator

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from alert_support import alert_settings, claim, record
from harness import Namespace, WorkerProcess, produce, wait_consumed
from prometheus_client.parser import text_string_to_metric_families

from streamer.aggregate import TrendStore
from streamer.alert.delivery import Dispatcher
from streamer.alert.store import AlertStore
from streamer.kafka import ensure_topics, make_producer
from streamer.produce.sender import Outgoing

pytestmark = pytest.mark.slow

Record = tuple[dict[str, str], dict[str, object]]  # (headers, value)


async def _read(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[Record]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", isolation_level="read_committed")
    await consumer.start()
    out: list[Record] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                out += [({k: v.decode() for k, v in r.headers}, orjson.loads(r.value or b"{}"))
                        for r in recs]
    finally:
        await consumer.stop()
    return out


def read(bootstrap: str, topic: str, expected: int) -> list[Record]:
    return asyncio.run(_read(bootstrap, topic, expected))


NOW = "2026-01-02T03:04:05Z"
NEWS = {"id": "n1", "source": "wire", "headline": "Exxon cuts output as crude slumps",
        "published_at": NOW}
CHAT = {"id": "c1", "channel": "desk", "author": "ann", "text": "$AAPL up big today",
        "sent_at": NOW}


class Run:
    def __init__(self, ns: Namespace, worker: WorkerProcess) -> None:
        self.ns, self.worker = ns, worker


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory,
        ) -> Iterator[Run]:
    """One worker takes 3 good messages (one with a field no schema version knows) and
    2 bad ones."""
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("headers"), partitions=1)
    s = ns.settings()
    messages = [
        Outgoing(s.topics.news, b"n1", orjson.dumps(NEWS)),
        Outgoing(s.topics.news, b"n2", orjson.dumps({**NEWS, "id": "n2",
                                                    "region": "EMEA", "priority": 2})),
        Outgoing(s.topics.chat, b"c1", orjson.dumps(CHAT)),
        Outgoing(s.topics.chat, b"c2", b'{"id": "c2", "text": '),  # invalid JSON
        Outgoing(s.topics.news, b"n3", orjson.dumps({**NEWS, "id": "n3", "headline": 5})),
    ]
    worker = WorkerProcess(ns, "hdr").start()
    try:
        worker.wait_ready()
        produce(ns, messages)
        wait_consumed(ns, len(messages), workers=[worker])
        yield Run(ns, worker)
    finally:
        worker.stop()


def test_scored_records_carry_schema_version_content_type_and_model_headers(run: Run) -> None:
    scored = read(run.ns.kafka_bootstrap, run.ns.settings().topics.scored, 3)
    assert sorted(str(v["id"]) for _, v in scored) == ["c1", "n1", "n2"]
    for headers, value in scored:
        model = value["model"]
        assert isinstance(model, dict)
        assert headers["schema"] == "scored"
        assert headers["schema-version"] == str(value["schema_version"]) == "1"
        assert headers["content-type"] == "application/json"
        assert headers["model-id"] == model["bundle_id"]
        assert headers["model"].startswith(f"{model['bundle']}/{model['variant']}@")


def test_dead_letters_carry_their_reason_as_a_header(run: Run) -> None:
    s = run.ns.settings()
    dead = (read(run.ns.kafka_bootstrap, s.topics.dlq(s.topics.chat), 1)
            + read(run.ns.kafka_bootstrap, s.topics.dlq(s.topics.news), 1))
    assert sorted((h["reason"], v["reason"]) for h, v in dead) == [
        ("invalid_json", "invalid_json"), ("validation_failed", "validation_failed")]
    for headers, _ in dead:
        assert headers["schema"] == "dead-letter"
        assert headers["schema-version"] == "1"
        assert headers["content-type"] == "application/json"


def test_a_message_with_unknown_fields_is_scored_and_counted(run: Run) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{run.worker.port}/metrics",
                                timeout=5) as r:
        text = r.read().decode()
    counted = {sample.labels["topic"]: sample.value
               for family in text_string_to_metric_families(text)
               if family.name == "streamer_unknown_fields"
               for sample in family.samples if sample.name.endswith("_total")}
    assert counted == {run.ns.settings().topics.news: 1.0}


async def test_alert_records_carry_schema_headers(redis_url: str, kafka_bootstrap: str) -> None:
    settings = alert_settings(redis_url, KAFKA_BOOTSTRAP=kafka_bootstrap,
                              topic_alerts=f"alerts-{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings, [settings.topics.alerts], partitions=1)
    trends = TrendStore.connect(settings.redis, settings.aggregate)
    store = AlertStore(trends.redis, settings.redis.key_prefix,
                       claim_ttl_s=settings.alerts.claim_ttl_s)
    disp = Dispatcher(settings.alerts, settings.topics.alerts, store, worker_id="w1",
                      producer_factory=lambda: make_producer(settings))
    try:
        await claim(store, [record(0)], webhook=False)
        assert await disp.deliver_once() == 1
        [(headers, value)] = await _read(kafka_bootstrap, settings.topics.alerts, 1)
    finally:
        await disp.close()
        await trends.close()
    assert value["alert_id"] == record(0).alert_id
    assert headers == {"schema": "alert", "schema-version": "1",
                       "content-type": "application/json"}
