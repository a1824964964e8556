"""Shared helpers for the alerting tests (no tests here): synthetic scored events, Redis
settings per test, and a worker launcher with alerting attached."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from streamer.aggregate import TrendStore, build_deltas
from streamer.detect.core import ScopeKey
from streamer.schemas import Origin, Prediction, ScoredEvent, Stamps
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
                ticker: str = "XOM", label: str = "energy-oil") -> list[ScoredEvent]:
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
        for key in [("all", "all"), ("topic", ev.topic.label),
                    *[("ticker", t) for t in ev.tickers]]:
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
