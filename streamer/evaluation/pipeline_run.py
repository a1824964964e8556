"""Replay a labelled stream through the real pipeline and score the alerts it produces.

Kafka, a worker process (``streamer worker``) and Redis, in a
namespace of their own (topics, consumer group, Redis prefix), so a run never touches
other data. The stream is sent paced by its event times divided by ``speed``; the
alerts are read back from the alerts topic; :func:`streamer.evaluation.judge.evaluate`
matches them with the labels. The same stream is also run through the detector
offline (scored in-process, no Kafka): equal alert ids show that the pipeline's
event-time windows made the replay speed irrelevant.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import orjson

from streamer.aggregate import TrendStore
from streamer.aggregate.summary import accounts
from streamer.alert.follow import read_alerts
from streamer.alert.store import AlertStore
from streamer.detect.core import Buckets, ScopeKey
from streamer.evaluation.judge import Detected, EvalReport, Labelled, evaluate
from streamer.evaluation.offline import detect, score_buckets
from streamer.evaluation.rows import AlertRow, to_detected
from streamer.evaluation.synthetic import StreamLine
from streamer.kafka import ensure_topics, make_producer
from streamer.kafka.security import start_client
from streamer.keys import Scope
from streamer.schemas.alerts import AlertRecord
from streamer.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@dataclass
class EvalNamespace:
    settings: Settings
    env: dict[str, str]
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


def namespace(base: Settings, data_dir: Path, *, uid: str | None = None,
              web_port: int | None = None, extra_env: dict[str, str] | None = None
              ) -> EvalNamespace:
    """Settings and worker environment for one evaluation, apart from everything else.

    The worker inherits this process's environment (so STREAMER_ALERT_* and the other
    settings apply to both sides); ``extra_env`` overrides settings on both sides.
    """
    uid = uid or uuid.uuid4().hex[:8]
    names: dict[str, str] = {
        "app_id": f"eval-{uid}", "topic_news": f"news-{uid}", "topic_chat": f"chat-{uid}",
        "topic_scored": f"scored-{uid}", "topic_alerts": f"alerts-{uid}",
        "redis_key_prefix": f"ev{uid}", "data_dir": str(data_dir),
        "worker_id": f"eval-{uid}",
    }
    if web_port is not None:
        names["web_port"] = str(web_port)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": base.kafka.bootstrap,
        "REDIS_URL": base.redis.url,
        "STREAMER_SCORER": base.scoring.scorer,
        "STREAMER_MODEL_WATCH_S": "0",  # one model for the whole replay: no upgrade mid-run
        **{f"STREAMER_{k.upper()}": v for k, v in names.items()},
        **(extra_env or {}),
    }
    # Validated like the worker will validate them (env strings -> typed settings).
    settings = base.replace(**names).with_env(extra_env or {})
    return EvalNamespace(settings, env, uid)


# --- the worker -----------------------------------------------------------------------------
class Worker:
    def __init__(self, ns: EvalNamespace, log: Path) -> None:
        self.ns = ns
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamer.cli.main", "worker", "--loglevel", "warning"],
                env=self.ns.env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO,
                start_new_session=True,
            )
        return self

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.ns.settings.web.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(orjson.loads(r.read()).get("ready"))
        except Exception:
            return False

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if self.ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"the worker was not ready after {timeout:.0f}s; log: {self.log}")

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {self.proc.returncode}; log: {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)


# --- replay ---------------------------------------------------------------------------------
async def replay(settings: Settings, lines: list[StreamLine], speed: float | None,
                 on_progress: Callable[[int], None] | None = None) -> float:
    """Send ``lines`` in order; line i leaves at (event time i - first) / speed after
    the start (``speed`` None or 0: as fast as possible). Returns wall seconds taken."""
    topics = {"news": settings.topics.news, "chat": settings.topics.chat}
    times = [ln.event_time.timestamp() if ln.event_time else None for ln in lines]
    first = next((t for t in times if t is not None), 0.0)
    producer = make_producer(settings)
    await start_client(settings.kafka, producer)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    wall0 = time.time()
    pending: list[asyncio.Future[object]] = []
    last_t = first
    try:
        for i, (line, t) in enumerate(zip(lines, times, strict=True)):
            last_t = t if t is not None else last_t
            due = (last_t - first) / speed if speed else 0.0
            if speed and (delay := t0 + due - loop.time()) > 0:
                await asyncio.sleep(delay)
            stamp = int((wall0 + due) * 1000) if speed else int(time.time() * 1000)
            pending.append(await producer.send(topics[line.kind], line.value, timestamp_ms=stamp))
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending.clear()
                if on_progress:
                    on_progress(i + 1)
        await asyncio.gather(*pending)
        await producer.flush()
        if on_progress:
            on_progress(len(lines))
    finally:
        await producer.stop()
    return loop.time() - t0


async def wait_for(settings: Settings, sent: int, last_event_s: float, *, timeout: float,
                   worker: Worker | None = None) -> int | None:
    """Wait until the worker consumed ``sent`` records and the detector evaluated every
    bucket the final watermark closes, with the outbox empty. Returns the cursor."""
    store = TrendStore.connect(settings.redis, settings.aggregate)
    alerts = AlertStore(store.redis, settings.redis.key_prefix,
                        claim_ttl_s=settings.alerts.claim_ttl_s)
    w = settings.aggregate.bucket_seconds
    target = int(last_event_s - settings.alerts.allowed_lateness_s) // w * w - w
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if worker is not None:
                worker.check()
            consumed = sum(a.consumed for a in await accounts(store))
            cursor = await alerts.cursor()
            if (consumed >= sent and cursor is not None and cursor >= target
                    and await alerts.pending_count("kafka") == 0):
                return cursor
            await asyncio.sleep(1.0)
        return await alerts.cursor()
    finally:
        await store.close()


async def collect(settings: Settings) -> list[AlertRecord]:
    return [r async for r in read_alerts(settings, follow=False, from_beginning=True)]


def offline_alerts(settings: Settings, lines: list[StreamLine], upto_bucket: int | None
                   ) -> list[Detected]:
    """The same stream through the detector without Kafka or Redis (same scorer)."""
    from streamer.score.select import load_scorer
    from streamer.training.quick import build_if_missing

    buckets = score_buckets(((ln.kind, ln.value) for ln in lines), settings,
                            load_scorer(settings, build_if_missing), scopes=settings.alerts.scopes)
    if upto_bucket is not None:
        buckets = {b: c for b, c in buckets.items() if b <= upto_bucket}
    return detect(settings.alerts.detector(settings.aggregate.bucket_seconds), buckets,
                  lateness_s=settings.alerts.allowed_lateness_s, scopes=settings.alerts.scopes)


async def read_buckets(settings: Settings, span: tuple[float, float], scopes: Iterable[str]
                       ) -> Buckets:
    """The pipeline's own counts (from Redis) over ``span``: (messages, negatives) per
    bucket and scope key of the given scope kinds. What the scorer made of the stream, for
    the spikes' shares and the timelines."""
    store = TrendStore.connect(settings.redis, settings.aggregate)
    out: dict[int, dict[ScopeKey, tuple[int, int]]] = {}
    try:
        wanted = cast("list[Scope]", sorted(set(scopes)))
        rows = await store.buckets(span[0], span[1], scopes=wanted)
        for b, keys in rows.items():
            out[b] = {key: (wc.total, wc.counts.get("negative", 0)) for key, wc in keys.items()}
    finally:
        await store.close()
    return out


def score(labels: Sequence[Labelled], rows: Iterable[AlertRow], lines: list[StreamLine],
          settings: Settings, buckets: Buckets | None = None) -> EvalReport:
    """Judge ``rows`` against synthetic spike labels (caught, delay, false alerts)."""
    times = [ln.event_time.timestamp() for ln in lines if ln.event_time is not None]
    p = settings.alerts.detector(settings.aggregate.bucket_seconds)
    return evaluate(labels, to_detected(rows), span=(min(times), max(times)),
                    warmup_s=p.warmup_s + p.buckets * p.bucket_s, buckets=buckets,
                    bucket_s=p.bucket_s, baseline_s=p.baseline_s)


async def prepare(ns: EvalNamespace) -> None:
    await ensure_topics(ns.settings)
