"""Run real worker processes and real producers for the end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from servers import free_ports

from streamer.aggregate import TrendStore
from streamer.aggregate.scopes import scope_keys
from streamer.aggregate.summary import TopicAccount, accounts
from streamer.kafka.security import client_options
from streamer.produce.demo import DemoConfig, DemoGenerator, DemoMessage
from streamer.produce.sender import Outgoing, send_all
from streamer.settings import Settings

REPO = Path(__file__).resolve().parents[1]
# Rows of the fault table: tests/test_chaos.py adds them, conftest prints and saves them.
CHAOS_ROWS: list[dict[str, object]] = []


@dataclass
class Namespace:
    """Topic names, consumer group and Redis prefix of one test, apart from all others."""

    kafka_bootstrap: str
    redis_url: str
    data_dir: Path
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "REDIS_URL": self.redis_url,
            "STREAMER_APP_ID": f"streamer-{self.uid}",
            "STREAMER_TOPIC_NEWS": f"news-{self.uid}",
            "STREAMER_TOPIC_CHAT": f"chat-{self.uid}",
            "STREAMER_TOPIC_SCORED": f"scored-{self.uid}",
            "STREAMER_TOPIC_ALERTS": f"alerts-{self.uid}",
            "STREAMER_REDIS_KEY_PREFIX": f"t{self.uid}",
            "STREAMER_TOPIC_PARTITIONS": str(self.partitions),
            "STREAMER_DATA_DIR": str(self.data_dir),
            "STREAMER_SCORER": "baseline",
            "STREAMER_COMMIT_INTERVAL_S": "0.5",
            **self.extra_env,
        }

    def settings(self) -> Settings:
        env = {k.removeprefix("STREAMER_").lower(): v for k, v in self.env().items()
               if k.startswith("STREAMER_")}
        return Settings(_env_file=None, KAFKA_BOOTSTRAP=self.kafka_bootstrap,
                        REDIS_URL=self.redis_url, **env)


class WorkerProcess:
    def __init__(self, ns: Namespace, name: str) -> None:
        self.ns = ns
        self.name = name
        self.port = free_ports(1)[0]
        self.log = ns.data_dir / f"worker-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {**os.environ, **self.ns.env(), "STREAMER_WEB_PORT": str(self.port),
               "STREAMER_WORKER_ID": self.name}
        self.ns.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                # STREAMER_TEST_WORKER_LOGLEVEL=info keeps faust's rebalance story in the log.
                [sys.executable, "-m", "streamer.cli.main", "worker", "--loglevel",
                 os.environ.get("STREAMER_TEST_WORKER_LOGLEVEL", "warning")],
                env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO,
                start_new_session=True,
            )
        return self

    def ready(self) -> dict[str, object] | None:
        """The /readyz body (also when it answers 503), or None when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return orjson.loads(r.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            try:
                return orjson.loads(exc.read())  # type: ignore[no-any-return]
            except Exception:
                return None
        except Exception:
            return None

    def metric(self, name: str) -> float | None:
        """One unlabelled sample from the worker's /metrics, e.g. process_resident_memory_bytes."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                for line in r.read().decode().splitlines():
                    if line.startswith(name + " "):
                        return float(line.split()[1])
        except Exception:
            return None
        return None

    def wait_ready(self, timeout: float = 120.0) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.tail()}")
            state = self.ready()
            if state and state.get("ready"):
                return state
            time.sleep(0.5)
        raise AssertionError(f"worker {self.name} not ready in {timeout}s:\n{self.tail()}")

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the worker's process group (supervisor and child), not waiting."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def mixed_stream(ns: Namespace, *, seed: int, minutes: float, bad_fraction: float,
                 big_message: bool = True) -> list[Outgoing]:
    """Demo news + chat with malformed messages; plus one at the broker's size limit."""
    s = ns.settings()
    cfg = DemoConfig(seed=seed, minutes=minutes, news_per_min=60, chat_per_min=160,
                     bad_fraction=bad_fraction, max_text_chars=s.input.max_text_chars,
                     max_message_bytes=s.input.max_message_bytes)
    messages: list[DemoMessage] = DemoGenerator(cfg).generate()[0]
    topics = {"news": s.topics.news, "chat": s.topics.chat}
    out = [Outgoing(topics[m.kind], None, m.value) for m in messages]
    if big_message:
        # Just under the broker's default message.max.bytes (1 MiB + overhead).
        out.insert(len(out) // 2, Outgoing(s.topics.news, None, b'{"id":"big","x":"'
                                           + b"y" * 1_000_000 + b'"}'))
    return out


def is_valid(settings: Settings, msg: Outgoing) -> bool:
    from streamer.ingest import DecodeFailure, TickerExtractor, decode, normalize
    from streamer.schemas import Origin

    kind = "news" if msg.topic == settings.topics.news else "chat"
    parsed = decode(msg.value, kind, max_bytes=settings.input.max_message_bytes)
    if isinstance(parsed, DecodeFailure):
        return False
    ev = normalize(parsed, Origin(topic=msg.topic, partition=0, offset=0),
                   TickerExtractor.from_csv(), max_chars=settings.input.max_text_chars)
    if isinstance(ev, DecodeFailure):
        return False
    from streamer.ingest.eventtime import check_event_time

    now_ms = time.time() * 1000.0
    return not isinstance(check_event_time(ev, now_ms, settings.input.max_future_skew_s),
                          DecodeFailure)


def produce(ns: Namespace, messages: list[Outgoing], rate: float | None = None) -> None:
    asyncio.run(send_all(ns.settings(), messages, rate=rate, progress=False))


class BackgroundProducer:
    """``produce`` at a fixed rate on a thread, so faults can hit a stream in motion."""

    def __init__(self, ns: Namespace, messages: list[Outgoing], rate: float) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(ns, messages, rate), daemon=True)

    def _run(self, ns: Namespace, messages: list[Outgoing], rate: float) -> None:
        try:
            produce(ns, messages, rate=rate)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> BackgroundProducer:
        self._thread.start()
        return self

    def join(self, timeout: float = 300.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"producer still running after {timeout}s"
        if self.error is not None:
            raise AssertionError(f"producer failed: {self.error!r}") from self.error


async def _accounts(settings: Settings) -> list[TopicAccount]:
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        return await accounts(store)
    finally:
        await store.close()


def consumed_total(ns: Namespace) -> int:
    return sum(a.consumed for a in asyncio.run(_accounts(ns.settings())))


def wait_consumed(ns: Namespace, expected: int, timeout: float = 240.0,
                  workers: list[WorkerProcess] | None = None) -> list[TopicAccount]:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        accs = asyncio.run(_accounts(ns.settings()))
        last = sum(a.consumed for a in accs)
        if last >= expected:
            return accs
        for w in workers or []:
            assert w.proc is not None
            if w.proc.poll() is not None:
                raise AssertionError(f"worker {w.name} died:\n{w.tail()}")
        time.sleep(1.0)
    tails = "\n".join(w.tail() for w in workers or [])
    raise AssertionError(f"only {last} of {expected} consumed after {timeout}s\n{tails}")


def wait_committed(ns: Namespace, timeout: float = 180.0,
                   workers: list[WorkerProcess] | None = None) -> None:
    """Until the group's committed offsets reach every input partition's end: replays
    after a rebalance finish, and their records are committed, only then."""
    from streamer.kafka.lag import group_lag

    deadline = time.monotonic() + timeout
    lag: dict = {}
    while time.monotonic() < deadline:
        lag = asyncio.run(group_lag(ns.settings()))
        if lag and not any(lag.values()):
            return
        for w in workers or []:
            assert w.proc is not None
            if w.proc.poll() is not None:
                raise AssertionError(f"worker {w.name} died:\n{w.tail()}")
        time.sleep(1.0)
    raise AssertionError(f"lag still {sum(lag.values())} after {timeout}s: {lag}")


async def _read_topic(bootstrap: str, topic: str, expected: int, timeout: float,
                      isolation: str, security: dict[str, Any] | None = None) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        enable_auto_commit=False, isolation_level=isolation, group_id=None,
        fetch_max_bytes=16 * 1024 * 1024, max_partition_fetch_bytes=4 * 1024 * 1024,
        **(security or {}),
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        idle_after_expected = 0
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            got = [r.value for rs in batch.values() for r in rs if r.value is not None]
            values += got
            if len(values) >= expected:
                # Keep reading a little longer: extra records (duplicates) must show up.
                idle_after_expected = idle_after_expected + 1 if not got else 0
                if idle_after_expected >= 3:
                    break
    finally:
        await consumer.stop()
    return values


def read_topic(ns: Namespace, topic: str, expected: int, timeout: float = 60.0,
               isolation: str = "read_committed") -> list[dict[str, object]]:
    raw = asyncio.run(_read_topic(ns.kafka_bootstrap, topic, expected, timeout, isolation,
                                  client_options(ns.settings().kafka)))
    return [orjson.loads(v) for v in raw]


def expected_counts(scored: list[dict]) -> Counter[tuple[str, str, str]]:
    """(scope, key, sentiment label) -> count, computed from the scored records."""
    c: Counter[tuple[str, str, str]] = Counter()
    for ev in scored:
        label = ev["sentiment"]["label"]
        for scope, key in scope_keys(ev["kind"], ev["topic"]["label"], ev["tickers"],
                                     ev.get("markets", [])):
            c[(scope, key, label)] += 1
    return c


async def _redis_counts(settings: Settings) -> Counter[tuple[str, str, str]]:
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        span = await store.time_range()
        if span is None:  # nothing aggregated (e.g. only bad input)
            return Counter()
        window = await store.window_all(span[0], span[1])
    finally:
        await store.close()
    return Counter({(scope, key, label): n for (scope, key), wc in window.items()
                    for label, n in wc.counts.items()})


def redis_counts(ns: Namespace) -> Counter[tuple[str, str, str]]:
    return asyncio.run(_redis_counts(ns.settings()))


def topic_of(scored: list[dict[str, Any]], ticker: str) -> str:
    """The topic the scorer gave most news naming ``ticker``: a head's label names come
    from its data ("Energy | Oil" from a Twitter Financial News topic head), so the
    end-to-end tests ask the scored records instead of spelling one head's names."""
    topics = Counter(ev["topic"]["label"] for ev in scored
                     if ev["kind"] == "news" and ticker in ev["tickers"])
    return topics.most_common(1)[0][0]


@dataclass
class Outcome:
    """What came out of a run, measured from Kafka and Redis, against what went in."""

    sent: int
    valid: int
    scored: int  # distinct valid ids on the scored topic
    lost: int  # valid messages with no scored record
    duplicates: int  # scored records beyond one per id
    redis_extra: int  # Redis "all" count minus distinct scored: >0 double-counted, <0 lost
    redis_exact: bool  # every (scope, key, label) count equals the scored records' own
    dead_lettered: int
    # Where the extra copies came from: (output, input topic, partition, offset) of each
    # record seen more than once, so a failure says which partitions to look at.
    repeated: list[tuple[str, str, int, int]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return (self.lost == 0 and self.duplicates == 0 and self.redis_extra == 0
                and self.redis_exact and self.scored + self.dead_lettered == self.sent)


def measure(ns: Namespace, messages: list[Outgoing]) -> Outcome:
    s = ns.settings()
    valid_ids = {str(orjson.loads(m.value)["id"]) for m in messages if is_valid(s, m)}
    records = read_topic(ns, s.topics.scored, len(valid_ids))
    ids = Counter(str(ev["id"]) for ev in records)
    n_bad = len(messages) - len(valid_ids)
    dead: list[dict[str, object]] = []
    for t in s.topics.inputs if n_bad else ():
        dead += read_topic(ns, s.topics.dlq(t), 1, timeout=20)
    dead_ids = Counter((d["topic"], d["partition"], d["offset"]) for d in dead)
    redis = redis_counts(ns)
    redis_all = sum(n for (scope, _, _), n in redis.items() if scope == "all")
    return Outcome(
        sent=len(messages), valid=len(valid_ids), scored=len(valid_ids & set(ids)),
        lost=len(valid_ids - set(ids)) + max(0, n_bad - len(dead_ids)),
        duplicates=len(records) - len(ids) + len(dead) - len(dead_ids),
        redis_extra=redis_all - len(ids),
        redis_exact=redis == expected_counts(list({str(ev["id"]): ev for ev in records}.values())),
        dead_lettered=len(dead_ids),
        repeated=sorted(
            [("scored", *o) for o, n in Counter(
                (ev["origin"]["topic"], ev["origin"]["partition"], ev["origin"]["offset"])
                for ev in records).items() if n > 1]
            + [("dlq", *o) for o, n in dead_ids.items() if n > 1]),  # type: ignore[misc]
    )
