"""Shared helpers for the alerting tests (no tests here): synthetic scored events, Redis
settings per test, a trend store that keeps its settings, an alert engine on a fake
clock and the loop that drives it, and alert records to claim."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from streamer.aggregate import TrendStore, build_deltas
from streamer.aggregate.scopes import event_scope_keys
from streamer.alert.engine import AlertEngine
from streamer.alert.store import AlertStore
from streamer.detect.core import ScopeKey
from streamer.keys import episode_id
from streamer.schemas import Origin, Prediction, ScoredEvent, Stamps
from streamer.schemas.alerts import AlertRecord
from streamer.settings import Settings

T0 = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)


class SettingsStore(TrendStore):
    """A trend store that keeps the whole settings it was connected with, for the tests
    that build other components beside it (the store itself takes only its sections)."""

    s: Settings

    @classmethod
    def of(cls, settings: Settings) -> SettingsStore:
        store = cls.connect(settings.redis, settings.aggregate)
        assert isinstance(store, SettingsStore)
        store.s = settings
        return store


def alert_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_key_prefix": f"t{uuid.uuid4().hex[:8]}",
        "bucket_seconds": 10,
        "alert_warmup_s": 240,
    }
    values.update(overrides)
    return Settings(_env_file=None, REDIS_URL=redis_url, **values)


def make_events(seed: int, minutes: float, *, per_min: float = 30.0, share: float = 0.15,
                spike_at_min: float | None = None, spike_per_min: float = 60.0,
                spike_minutes: float = 1.5, partitions: int = 2, topic: str = "news",
                ticker: str = "XOM", label: str = "Energy | Oil") -> list[ScoredEvent]:
    """Scored events on one ticker/topic, Poisson in time, spread over ``partitions``;
    a spike adds ``spike_per_min`` negatives for ``spike_minutes``."""
    rng = random.Random(seed)
    times: list[tuple[float, bool]] = []
    t = 0.0
    while True:
        t += rng.expovariate(per_min / 60.0)
        if t >= minutes * 60:
            break
        times.append((t, rng.random() < share))
    if spike_at_min is not None:
        t = spike_at_min * 60
        while True:
            t += rng.expovariate(spike_per_min / 60.0)
            if t >= (spike_at_min + spike_minutes) * 60:
                break
            times.append((t, True))
    times.sort()
    offsets = [0] * partitions
    out = []
    for i, (secs, negative) in enumerate(times):
        p = rng.randrange(partitions)
        sentiment = "negative" if negative else rng.choice(["neutral", "positive"])
        probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
        probs[sentiment] = round(0.6 + rng.random() * 0.3, 6)
        out.append(ScoredEvent(
            id=f"e{seed}-{i}", kind="news", source="wire-a",
            snippet=f"{'Crude slumps' if negative else 'Oil steady'} {i}",
            tickers=[ticker], event_time=T0 + timedelta(seconds=secs),
            sentiment=Prediction(label=sentiment, probs=probs),
            topic=Prediction(label=label, probs={label: 1.0}), scorer="test",
            origin=Origin(topic=topic, partition=p, offset=offsets[p]),
            stamps=Stamps(produced=(T0 + timedelta(seconds=secs + 0.25)).timestamp() * 1000),
        ))
        offsets[p] += 1
    return out


def bucket_counts(events: Iterable[ScoredEvent], width: int = 10
                  ) -> dict[int, dict[ScopeKey, tuple[int, int]]]:
    acc: dict[int, dict[ScopeKey, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for ev in events:
        ts = int(ev.event_time.timestamp())
        b = acc[ts - ts % width]
        for key in event_scope_keys(ev):
            b[key][0] += 1
            b[key][1] += int(ev.sentiment.label == "negative")
    return {b: {k: (c[0], c[1]) for k, c in keys.items()} for b, keys in acc.items()}


def batches(events: Sequence[ScoredEvent], seed: int, max_size: int) -> list[list[ScoredEvent]]:
    """Consume like a worker would: each partition in order, partitions interleaved at
    random, batches of random size (what replay speed and fetch timing change)."""
    rng = random.Random(seed)
    queues: dict[int, list[ScoredEvent]] = defaultdict(list)
    for ev in events:
        queues[ev.origin.partition].append(ev)
    out = []
    while any(queues.values()):
        p = rng.choice([k for k, q in queues.items() if q])
        n = rng.randint(1, max_size)
        out.append(queues[p][:n])
        queues[p] = queues[p][n:]
    return out


async def apply(store: TrendStore, batch: Sequence[ScoredEvent]) -> None:
    for delta in build_deltas(batch, [], store.bucket_seconds).values():
        await store.apply(delta)


# --- alert engine and store helpers ---------------------------------------------------------
NOW = datetime(2026, 1, 2, 9, 30, tzinfo=UTC)


class FakeClock:
    """Wall-clock milliseconds that move only when a test moves them."""

    def __init__(self) -> None:
        self.ms = 1_000_000.0

    def __call__(self) -> float:
        return self.ms


def engine(store: TrendStore, name: str = "w1", clock: FakeClock | None = None,
           partitions: int = 3) -> AlertEngine:
    clock = clock or FakeClock()
    eng = AlertEngine(store.s.alerts, store, clock_ms=clock, worker_id=name)
    eng.events.expect([f"news:{p}" for p in range(partitions)], clock())
    return eng


async def drive(eng: AlertEngine, store: TrendStore, plan: list[list]) -> list[AlertRecord]:
    """Apply each batch to Redis, record it for alerting, evaluate until caught up."""
    out: list[AlertRecord] = []
    for batch in plan:
        await apply(store, batch)
        await eng.observe(batch)
        while True:
            ev = await eng.evaluate()
            out += ev.alerts
            if not ev.behind:
                break
    return out


def record(i: int, key: str = "XOM", kind: str = "fired") -> AlertRecord:
    return AlertRecord(
        alert_id=f"{episode_id('ticker', key, 1767344400 + i * 10)}:{kind}",
        episode_id=episode_id("ticker", key, 1767344400 + i * 10),
        kind=kind,  # type: ignore[arg-type]
        scope="ticker", key=key, severity="warning", reason="share",
        window_start=NOW, window_end=NOW + timedelta(seconds=60), messages=20, negatives=12,
        negative_share=0.6, baseline_share=0.1, baseline_messages=8.0, z=6.1,
        first_event_time=NOW, detected_event_time=NOW + timedelta(seconds=62),
        detected_at=NOW + timedelta(seconds=63), detection_latency_ms=63_000.0,
        detection_delay_ms=62_000.0, worker="test",
    )


async def claim(store: AlertStore, records: list[AlertRecord], *, webhook: bool,
                max_pending: int = 100) -> None:
    cursor = await store.cursor()
    result = await store.commit(
        expected_cursor=cursor, cursor=(cursor or 0) + 10, origin=0, changed={}, removed=[],
        alerts=records, webhook=webhook, webhook_max_pending=max_pending,
    )
    assert result.committed and len(result.claimed) == len(records)
