"""The peer pipeline for ``streamer bench pipeline``: the same job written with Quix Streams.

What a competent user builds on Quix Streams, the way its documentation shows
(docs/configuration.md, docs/advanced/checkpointing.md, docs/connectors/sinks/README.md
and custom-sinks.md, docs/branching.md in github.com/quixio/quix-streams):

* one ``Application`` (``at-least-once``, ``auto_offset_reset="earliest"``); its batching
  is the checkpoint: ``commit_every`` messages or ``commit_interval`` seconds, whichever
  comes first (the sinks page's "Performance Considerations");
* one ``StreamingDataFrame`` per input topic (JSON values); ``.apply`` does the
  per-message step (text and tickers: ``streamer.bench.peer.prepare``), and both sink
  into the same sink (a sink may take several dataframes; ``concat`` is not used: it
  switches the consumer to timestamp-aligned buffering, which this job does not need);
* a ``BatchingSink`` (``ScoreAndCount``): records accumulate per topic partition until
  the checkpoint flushes them; ``write(batch)`` scores the partition's batch in one
  scorer call (the project's ONNX Runtime scorer of the same bundle and variant as the
  worker's: the INT8 student on CPU, configured by the same settings; only its intra-op
  threads are the peer's own, since the app has one processing thread) and adds the
  counts per topic and per ticker in one Redis MULTI pipeline; the offsets are committed
  only after every sink flushed.

``consumer_poll_timeout`` is the commit interval, so that an idle poll does not hold a
due checkpoint (its default, 1 s, would add up to a second to a quiet stream's latency).

Measurements only, laid out like the naive pipeline's so the harness reads them the same
way: end-to-end latency per message (the time its Redis pipeline returned minus its Kafka
record timestamp, which the bench producer sets to the intended send time; Kafka's
timestamps are whole milliseconds) in an HDR histogram pushed to
``<prefix>:latency:<worker>`` (field ``end_to_end``) by a thread every
``STREAMER_LATENCY_PUSH_INTERVAL_S``; ``<prefix>:peer:ready`` once the consumer group's
assignment covers every input partition. The project's per-stage stamps are not made:
the peer has only its end-to-end latency, as the naive pipeline.

Run: ``python -m streamer.bench.peer_quix [--bundle DIR] [--threads 2] [--commit-every 64]
[--commit-interval-s 0.05] [--worker-id ID]``; topics, consumer group and Redis prefix come
from the usual ``STREAMER_*`` settings. Needs the ``peer`` extra (``streamer.bench.peer``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import redis

from streamer.bench.peer import (
    ERROR_FIELD,
    INSTALL_HINT,
    PeerUnavailable,
    Prepared,
    counts_key,
    prepare,
    ready_key,
    require_quixstreams,
)
from streamer.ingest.tickers import TickerExtractor
from streamer.keys import Keyspace, field
from streamer.latency.histograms import END_TO_END, new_histogram
from streamer.score.base import Scorer
from streamer.settings import Settings

try:
    from quixstreams import Application
    from quixstreams.sinks import BatchingSink, SinkBatch
except ImportError as exc:  # run as a module: one line saying what to install
    raise SystemExit(f"the Quix Streams peer needs quixstreams: {INSTALL_HINT}") from exc

log = logging.getLogger(__name__)
_MAX_US = 3_600_000_000


class Latency:
    """End-to-end latency per message, an HDR histogram the harness reads from Redis."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._redis, self._key = client, key
        self._hist = new_histogram()
        self._lock = threading.Lock()

    def record(self, timestamps_ms: Iterable[int]) -> None:
        now_us = time.time() * 1e6
        with self._lock:
            for ts in timestamps_ms:
                self._hist.record_value(max(1, min(round(now_us - ts * 1000), _MAX_US)))

    def push(self) -> None:
        with self._lock:
            encoded = self._hist.encode().decode("ascii")
        self._redis.hset(self._key, mapping={END_TO_END[0]: encoded})
        self._redis.expire(self._key, 86_400)

    def keep_pushing(self, every_s: float, stop: threading.Event) -> None:
        while not stop.wait(every_s):
            try:
                self.push()
            except redis.RedisError as exc:
                log.warning("could not push the latency histogram: %s", exc)


class ScoreAndCount(BatchingSink):
    """Scores a checkpoint's batch of one topic partition and adds its counts to Redis."""

    def __init__(self, scorer: Scorer, client: redis.Redis, settings: Settings,
                 latency: Latency) -> None:
        super().__init__()
        self._scorer, self._redis, self._latency = scorer, client, latency
        self._topics, self._tickers = counts_key(settings, "topic"), counts_key(settings, "ticker")

    def write(self, batch: SinkBatch) -> None:
        items = list(batch)
        values: list[Prepared] = [item.value for item in items]
        good = [v for v in values if not v["error"]]
        topics: Counter[str] = Counter()
        tickers: Counter[str] = Counter()
        if good:
            scores = self._scorer.score([v["text"] for v in good], [v["source"] for v in good])
            for v, s, t in zip(good, scores.sentiment.argmax(axis=1),
                               scores.topic.argmax(axis=1), strict=True):
                sentiment = scores.sentiment_labels[int(s)]
                topics[field("topic", scores.topic_labels[int(t)], "n", sentiment)] += 1
                for ticker in v["tickers"]:
                    tickers[field("ticker", ticker, "n", sentiment)] += 1
        if len(good) < len(values):
            topics[ERROR_FIELD] += len(values) - len(good)
        pipe = self._redis.pipeline(transaction=True)
        for name, n in topics.items():
            pipe.hincrby(self._topics, name, n)
        for name, n in tickers.items():
            pipe.hincrby(self._tickers, name, n)
        pipe.execute()
        self._latency.record(item.timestamp for item in items)


def create_app(settings: Settings, sink: ScoreAndCount, tickers: TickerExtractor, *,
               commit_every: int, commit_interval_s: float, state_dir: Path) -> Application:
    app = Application(
        broker_address=settings.kafka.bootstrap,
        consumer_group=settings.worker.app_id,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        commit_interval=commit_interval_s,
        commit_every=commit_every,
        consumer_poll_timeout=min(commit_interval_s, 1.0),
        state_dir=state_dir,
        use_changelog_topics=False,
        auto_create_topics=False,  # created beforehand with the project's partitions
        loglevel="WARNING",
    )

    def step(value: Any) -> Prepared:
        return prepare(value, tickers)

    for name in settings.topics.inputs:
        sdf = app.dataframe(app.topic(name, value_deserializer="json"))
        sdf = sdf.apply(step)
        sdf.sink(sink)
    return app


def announce_ready(settings: Settings, client: redis.Redis, worker_id: str,
                   stop: threading.Event, timeout_s: float = 300.0) -> None:
    """Set the ready key once the group's members hold every input partition."""
    from confluent_kafka.admin import AdminClient

    admin: Any = AdminClient({"bootstrap.servers": settings.kafka.bootstrap})
    group = settings.worker.app_id
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            meta = admin.list_topics(timeout=5)
            want = {(t, p) for t in settings.topics.inputs
                    for p in meta.topics[t].partitions}
            desc = admin.describe_consumer_groups([group])[group].result(timeout=5)
            held = {(tp.topic, tp.partition) for m in desc.members
                    for tp in m.assignment.topic_partitions}
            if want and want <= held:
                client.set(ready_key(settings), worker_id, ex=86_400)
                return
        except Exception as exc:  # the group does not exist until the consumer joins
            log.debug("not ready yet: %s", exc)
        stop.wait(0.2)


def redis_client(settings: Settings) -> redis.Redis:
    """A plain (synchronous) client with the project's Redis connection settings."""
    r = settings.redis
    tls: dict[str, Any] = {}
    if r.url.startswith("rediss://"):
        tls = {"ssl_ca_certs": str(r.tls_ca_file) if r.tls_ca_file else None,
               "ssl_cert_reqs": "required"}
    return redis.Redis.from_url(r.url, username=r.username, password=r.secret(),
                                socket_timeout=r.timeout_s,
                                socket_connect_timeout=r.timeout_s, decode_responses=True,
                                **tls)


def main(argv: Sequence[str] | None = None) -> None:
    from streamer.bundle.locate import default_bundle_path
    from streamer.kafka import ensure_topics
    from streamer.score.select import onnx_scorer

    parser = argparse.ArgumentParser(prog="python -m streamer.bench.peer_quix",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=None,
                        help="model bundle to score with [default: the worker's]")
    parser.add_argument("--threads", type=int, default=2,
                        help="ONNX Runtime intra-op threads (default 2)")
    parser.add_argument("--commit-every", type=int, default=64,
                        help="checkpoint after this many messages (default 64)")
    parser.add_argument("--commit-interval-s", type=float, default=0.05,
                        help="checkpoint after this many seconds (default 0.05)")
    parser.add_argument("--worker-id", default=f"peer-{os.getpid()}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        version = require_quixstreams()
    except PeerUnavailable as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    settings = Settings()
    if settings.kafka.security_protocol != "PLAINTEXT":
        print("the Quix Streams peer runs against a PLAINTEXT broker only (the local stack)",
              file=sys.stderr)
        raise SystemExit(2)
    bundle = args.bundle or default_bundle_path(settings)
    scorer = onnx_scorer(settings.with_env({"STREAMER_ORT_INTRA_OP_THREADS":
                                            str(args.threads)}), bundle)
    scorer.warmup()
    print(f"peer pipeline: Quix Streams {version}, {scorer.name} from {bundle}, ONNX Runtime "
          f"intra-op threads {args.threads}, checkpoint every {args.commit_every} messages "
          f"or {args.commit_interval_s:g} s", flush=True)
    asyncio.run(asyncio.wait_for(ensure_topics(settings, settings.topics.inputs), 60))
    client = redis_client(settings)
    latency = Latency(client, Keyspace(settings.redis.key_prefix).latency(args.worker_id))
    sink = ScoreAndCount(scorer, client, settings, latency)
    state_dir = Path(settings.paths.data_dir) / "quix-peer" / args.worker_id
    app = create_app(settings, sink, TickerExtractor.from_csv(),
                     commit_every=args.commit_every, commit_interval_s=args.commit_interval_s,
                     state_dir=state_dir)
    stop = threading.Event()
    threads = [
        threading.Thread(target=latency.keep_pushing, daemon=True, name="latency-push",
                         args=(settings.worker.latency_push_interval_s, stop)),
        threading.Thread(target=announce_ready, daemon=True, name="ready",
                         args=(settings, client, args.worker_id, stop)),
    ]
    for t in threads:
        t.start()
    try:
        app.run()  # until SIGTERM or SIGINT: Quix Streams stops gracefully on either
    finally:
        stop.set()
        latency.push()


if __name__ == "__main__":
    main()
