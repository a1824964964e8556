"""The backbone end to end: real Kafka, real Redis, real worker processes."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from harness import (
    Namespace,
    WorkerProcess,
    expected_counts,
    is_valid,
    mixed_stream,
    produce,
    read_topic,
    redis_counts,
    topic_of,
    wait_committed,
    wait_consumed,
)
from prometheus_client.parser import text_string_to_metric_families
from servers import console_consume

from streamer.schemas.export import export_schemas

pytestmark = pytest.mark.slow


def assert_exact(ns: Namespace, accs: list, n_messages: int, n_valid: int) -> None:
    """Nothing lost, nothing twice: Redis counters, the scored topic and the aggregates."""
    assert sum(a.consumed for a in accs) == n_messages
    assert sum(a.scored for a in accs) == n_valid
    scored = read_topic(ns, ns.settings().topics.scored, n_valid)
    assert len(scored) == n_valid == len({ev["id"] for ev in scored})
    assert redis_counts(ns) == expected_counts(scored)


class Run:
    def __init__(self, ns: Namespace, sent: list, valid_ids: set[str], n_bad: int,
                 worker: WorkerProcess) -> None:
        self.ns, self.sent, self.valid_ids, self.n_bad = ns, sent, valid_ids, n_bad
        self.worker = worker


@pytest.fixture(scope="module")
def mixed_run(kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Run]:
    """One worker scores >= 2,000 mixed messages, >= 5% of them malformed."""
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path_factory.mktemp("mixed"))
    settings = ns.settings()
    messages = mixed_stream(ns, seed=11, minutes=10, bad_fraction=0.06)
    valid = [m for m in messages if is_valid(settings, m)]
    valid_ids = {json.loads(m.value)["id"] for m in valid}
    n_bad = len(messages) - len(valid)
    assert len(messages) >= 2000 and n_bad / len(messages) >= 0.05
    worker = WorkerProcess(ns, "w1").start()
    try:
        worker.wait_ready()
        produce(ns, messages)
        wait_consumed(ns, len(messages), workers=[worker])
        yield Run(ns, messages, valid_ids, n_bad, worker)
    finally:
        worker.stop()


def test_every_valid_message_is_scored_exactly_once(mixed_run: Run) -> None:
    s = mixed_run.ns.settings()
    scored = read_topic(mixed_run.ns, s.topics.scored, len(mixed_run.valid_ids))
    ids = Counter(ev["id"] for ev in scored)
    assert set(ids) == mixed_run.valid_ids
    assert max(ids.values()) == 1


def test_the_next_batch_is_scored_while_the_previous_one_is_written(mixed_run: Run) -> None:
    ns = mixed_run.ns
    scored = read_topic(ns, ns.settings().topics.scored, len(mixed_run.valid_ids))
    spans: dict[str, dict[float, float]] = {}  # topic -> batch start -> Redis ack
    for ev in scored:
        st = ev["stamps"]
        spans.setdefault(ev["origin"]["topic"], {})[st["batched"]] = st["aggregated"]
    overlapped = 0
    for batches in spans.values():
        starts = sorted(batches)
        assert len(starts) > 10
        # One agent per topic: its next batch began before its last one reached Redis.
        overlapped += sum(nxt < batches[prev] for prev, nxt in itertools.pairwise(starts))
    assert overlapped > 0


def test_every_bad_message_is_dead_lettered_with_a_reason(mixed_run: Run) -> None:
    s = mixed_run.ns.settings()
    dead = read_topic(mixed_run.ns, s.topics.dlq(s.topics.chat), 1) + read_topic(
        mixed_run.ns, s.topics.dlq(s.topics.news), 1)
    assert len(dead) == mixed_run.n_bad
    reasons = Counter(d["reason"] for d in dead)
    for reason in ("invalid_json", "invalid_utf8", "validation_failed", "empty_text",
                   "text_too_long", "too_large"):
        assert reasons[reason] > 0, reasons
    assert all(d["error"] for d in dead)


def test_accounting_balances_per_topic(mixed_run: Run) -> None:
    from harness import _accounts

    accs = asyncio.run(_accounts(mixed_run.ns.settings()))
    assert sum(a.consumed for a in accs) == len(mixed_run.sent)
    assert sum(a.scored for a in accs) == len(mixed_run.valid_ids)
    assert sum(a.dead_lettered for a in accs) == mixed_run.n_bad
    assert all(a.balanced for a in accs)


def metrics(run: Run) -> dict[str, Any]:
    """The worker's Prometheus metric families by name."""
    url = f"http://127.0.0.1:{run.worker.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        return {f.name: f for f in text_string_to_metric_families(r.read().decode())}


def test_the_workers_prometheus_metrics_count_what_it_did(mixed_run: Run) -> None:
    families = metrics(mixed_run)

    def total(name: str) -> float:
        return sum(s.value for s in families[name].samples if s.name.endswith("_total"))

    assert total("streamer_consumed") == len(mixed_run.sent)
    assert total("streamer_dead_lettered") == mixed_run.n_bad
    assert total("streamer_scored") == len(mixed_run.valid_ids)
    (rss,) = families["process_resident_memory_bytes"].samples
    assert rss.value > 0
    (live,) = families["streamer_scorer_info"].samples
    assert live.value == 1 and live.labels["scorer"]


def test_a_backlog_is_scored_in_batches_not_one_by_one(mixed_run: Run) -> None:
    # The messages were produced in one burst: what is already queued joins the batch,
    # however short the batch wait.
    sums = {s.name: s.value for s in metrics(mixed_run)["streamer_batch_size"].samples}
    mean = sums["streamer_batch_size_sum"] / sums["streamer_batch_size_count"]
    assert mean >= 8, f"mean batch {mean:.1f}"


def test_redis_aggregates_equal_counts_from_the_scored_records(mixed_run: Run) -> None:
    s = mixed_run.ns.settings()
    scored = read_topic(mixed_run.ns, s.topics.scored, len(mixed_run.valid_ids))
    assert redis_counts(mixed_run.ns) == expected_counts(scored)


def test_scored_labels_match_an_independent_scoring_of_the_input(mixed_run: Run) -> None:
    from streamer.score.select import load_baseline

    s = mixed_run.ns.settings()
    scorer = load_baseline(s)
    scored = read_topic(mixed_run.ns, s.topics.scored, len(mixed_run.valid_ids))
    # The snippet is the full text for these short demo messages.
    short = [ev for ev in scored if len(ev["snippet"]) < 280]
    result = scorer.score([ev["snippet"] for ev in short], [ev["kind"] for ev in short])
    labels = [scorer.sentiment_labels[i] for i in result.sentiment.argmax(1)]
    assert labels == [ev["sentiment"]["label"] for ev in short]


def test_kafkas_console_consumer_reads_records_that_match_the_schema(
    mixed_run: Run, tmp_path: Path
) -> None:
    s = mixed_run.ns.settings()
    schema = json.loads(
        next(p for p in export_schemas(tmp_path) if p.name == "scored.schema.json").read_text()
    )
    lines = console_consume(mixed_run.ns.kafka_bootstrap, s.topics.scored, 50)
    assert len(lines) == 50
    for line in lines:
        jsonschema.validate(json.loads(line), schema)


def test_the_injected_spike_raises_an_alert_that_kafkas_console_consumer_reads(
    mixed_run: Run, tmp_path: Path
) -> None:
    """The demo stream's negative burst on Energy | Oil / XOM comes out on the alerts topic,
    keyed scope:key with the topic's exact name, and every record validates against the
    exported alert schema."""
    s = mixed_run.ns.settings()
    schema = json.loads(
        next(p for p in export_schemas(tmp_path) if p.name == "alert.schema.json").read_text()
    )
    scored = read_topic(mixed_run.ns, s.topics.scored, len(mixed_run.valid_ids))
    spike = {("topic", topic_of(scored, "XOM")), ("ticker", "XOM")}
    fired: dict[tuple[str, str], dict] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and set(fired) != spike:
        lines = console_consume(mixed_run.ns.kafka_bootstrap, s.topics.alerts, 100,
                                timeout_s=10, formatter_props={"print.key": "true",
                                                               "key.separator": "\t"})
        for line in lines:
            key, value = line.split("\t", 1)
            record = json.loads(value)
            jsonschema.validate(record, schema)
            assert key == f"{record['scope']}:{record['key']}"
            if record["kind"] == "fired":
                fired[(record["scope"], record["key"])] = record
    assert spike <= set(fired), f"fired: {sorted(fired)}"
    for record in (fired[k] for k in spike):
        # Detected within a minute of event time after the burst's first message.
        assert 0 <= record["detection_delay_ms"] <= 60_000
        assert record["evidence"], "an alert carries the messages that caused it"


def test_two_workers_share_the_partitions_and_totals_stay_exact(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path)
    s = ns.settings()
    messages = mixed_stream(ns, seed=31, minutes=8, bad_fraction=0.05, big_message=False)
    n_valid = sum(1 for m in messages if is_valid(s, m))
    workers = [WorkerProcess(ns, f"w{i}").start() for i in (1, 2)]
    try:
        for w in workers:
            w.wait_ready()
        # After the group settles each worker owns some of the 4+4 input partitions.
        for _ in range(60):
            states = [w.ready() or {} for w in workers]
            owned = [int(st.get("partitions_assigned", 0)) for st in states]  # type: ignore[call-overload]
            if all(owned) and sum(owned) == 8:
                break
            time.sleep(1)
        assert all(owned) and sum(owned) == 8, owned
        produce(ns, messages)
        accs = wait_consumed(ns, len(messages), workers=workers)
        wait_committed(ns, workers=workers)
    finally:
        for w in workers:
            w.stop()
    assert_exact(ns, accs, len(messages), n_valid)

