"""The naive pipeline, for ``streamer bench pipeline`` to measure against.

What a user writes first: one Faust agent that, per message, decodes the JSON, runs the
transformers PyTorch FP32 teacher on that one text (``streamer.bench.models.naive_scorer``:
the same loader and pooling ``streamer bench models`` measures), and does one Redis
update (``HINCRBY`` of the predicted sentiment label's counter). No batching, no executor
(the model runs on the event loop), ``at_least_once``, torch threads = 2.

The only additions are measurements, laid out like the real worker's so the same readers
work: per message end-to-end latency (now minus the Kafka record timestamp, which the
bench producer sets to the intended send time) goes into an HDR histogram pushed to
``<prefix>:latency:<worker>`` (field ``end_to_end``); ``<prefix>:naive:ready`` is set
once the model is loaded and partitions are assigned.

Run: ``python -m streamer.bench.naive [--bundle DIR] [--threads 2] [--worker-id ID]``; topics,
consumer group and Redis prefix come from the usual ``STREAMER_*`` settings.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from streamer.keys import Keyspace
from streamer.latency.histograms import END_TO_END, new_histogram
from streamer.settings import Settings

log = logging.getLogger(__name__)


def counts_key(settings: Settings) -> str:
    """The hash of per-label counters: one HINCRBY per message; the sum = messages done."""
    return Keyspace(settings.redis.key_prefix).naive("sentiment")


def ready_key(settings: Settings) -> str:
    return Keyspace(settings.redis.key_prefix).naive("ready")


def text_of(value: bytes | None) -> tuple[str, str]:
    """(text, source) of a news or chat message; ValueError when it is neither."""
    from streamer.ingest.normalize import news_text

    obj = orjson.loads(value or b"")
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if isinstance(obj.get("headline"), str):
        body = obj.get("body")
        return news_text(obj["headline"], body if isinstance(body, str) else None), "news"
    if isinstance(obj.get("text"), str):
        return obj["text"], "chat"
    raise ValueError("neither news nor chat")


ScoreFn = Callable[[Sequence[str], Sequence[str]], Any]


def load_naive_model(bundle_dir: Path, threads: int) -> tuple[ScoreFn, tuple[str, ...], str]:
    """The naive scorer of ``streamer bench models``, its sentiment labels and what it is."""
    from streamer.bench.models import naive_scorer
    from streamer.bundle.load import load_bundle

    manifest = load_bundle(bundle_dir, verify=()).manifest
    labels = next((tuple(h.labels) for h in manifest.heads if h.name == "sentiment"),
                  ("negative", "neutral", "positive"))
    fn, what = naive_scorer(bundle_dir, manifest.max_length, threads)
    return fn, labels, what


def create_naive_app(settings: Settings, score: ScoreFn, labels: tuple[str, ...],
                     worker_id: str) -> Any:
    import faust

    from streamer.aggregate.store import TrendStore
    from streamer.kafka.security import faust_credentials
    from streamer.redis_client import RedisClient

    s = settings
    brokers = [f"kafka://{hp.strip()}" for hp in s.kafka.bootstrap.split(",") if hp.strip()]
    datadir = Path(s.paths.data_dir) / "faust-naive"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        s.worker.app_id,
        broker=brokers,
        broker_credentials=faust_credentials(s.kafka),
        processing_guarantee="at_least_once",
        web_enabled=False,
        topic_partitions=s.topics.partitions,
        topic_replication_factor=s.topics.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=s.commit.interval_s,
        producer_acks=-1,
        datadir=str(datadir),
    )
    # The project's Redis connection settings (password, TLS); nothing else of the store.
    redis: RedisClient = TrendStore.connect(s.redis, s.aggregate).redis
    hist = new_histogram()
    topic = app.topic(s.topics.news, s.topics.chat, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")
    key = counts_key(s)

    @app.agent(topic, name="naive-score", concurrency=1)
    async def naive_score(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            try:
                text, source = text_of(m.value)
                probs = score([text], [source])[0]["sentiment"]
                label = labels[int(probs.argmax())]
            except Exception:  # malformed input: counted, never stops the stream
                label = "error"
            await redis.hincrby(key, label, 1)  # type: ignore[misc]
            if m.timestamp:
                us = round((time.time() - m.timestamp) * 1e6)
                hist.record_value(max(1, min(us, 3_600_000_000)))

    @app.timer(interval=s.worker.latency_push_interval_s)
    async def push_latency() -> None:
        hkey = Keyspace(s.redis.key_prefix).latency(worker_id)
        try:
            await redis.hset(hkey, mapping={END_TO_END[0]: hist.encode().decode("ascii")})  # type: ignore[misc]
            await redis.expire(hkey, 86_400)
        except Exception as exc:
            log.warning("could not push latency histograms: %s", exc)

    @app.task
    async def announce_ready() -> None:
        while not app.consumer.assignment():
            await asyncio.sleep(0.2)
        await redis.set(ready_key(s), worker_id, ex=86_400)

    return app


def main(argv: Sequence[str] | None = None) -> None:
    from agents.worker import Worker
    from streamer.bundle.locate import default_bundle_path
    from streamer.kafka import ensure_topics

    parser = argparse.ArgumentParser(prog="python -m streamer.bench.naive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=None,
                        help="bundle whose _work/models/teacher to run [default: the worker's]")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--worker-id", default=f"naive-{os.getpid()}")
    parser.add_argument("--loglevel", default="warning")
    args = parser.parse_args(argv)
    settings = Settings()
    bundle = args.bundle or default_bundle_path(settings)
    score, labels, what = load_naive_model(bundle, args.threads)
    score(["warm-up"], ["chat"])
    print(f"naive pipeline: {what} from {bundle}; torch threads {args.threads}", flush=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(asyncio.wait_for(ensure_topics(settings, settings.topics.inputs), 60))
    app = create_naive_app(settings, score, labels, args.worker_id)
    Worker(app, loglevel=args.loglevel, loop=loop).execute_from_commandline()


if __name__ == "__main__":
    main()
