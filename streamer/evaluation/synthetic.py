"""Evaluation streams: a long calm demo stream with several labelled negative spikes.

``streamer demo --out DIR`` writes one spike per stream; evaluating the detector needs
hours of calm stream (false alerts per hour) and spikes of several sizes. This builds
them from the demo generator's own message factories, so texts, sources and tickers
are exactly what the demo produces, and writes one combined JSONL file in event-time
order (each line is the message as a producer would send it; see :func:`kind_of`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, Field

from streamer.produce.demo import DemoConfig, DemoGenerator, DemoMessage, DemoTopic, SpikeLabel

Kind = Literal["news", "chat"]
# (topic, ticker) pairs whose negative news the baseline scorer recognises as negative
# (its recall on the demo templates: docs/BENCHMARKS.md). Spikes on topics the scorer
# cannot see as negative (e.g. its trade (Macro) or Fed | Central Banks headlines) would
# test the scorer, not the detector. Topics by the demo's (the topic head's) names.
VISIBLE_TARGETS: tuple[tuple[str, str], ...] = (
    ("Energy | Oil", "XOM"), ("Earnings", "AAPL"), ("Energy | Oil", "CVX"),
    ("Earnings", "NVDA"), ("General News | Opinion", "FDX"), ("Earnings", "PFE"),
)


class SpikeSpec(BaseModel):
    at_min: float = Field(ge=0, description="Onset, minutes after the stream start.")
    minutes: float = Field(1.5, gt=0)
    per_min: float = Field(gt=0, description="Extra negative news per minute.")
    topic: DemoTopic
    ticker: str


class StreamSpec(BaseModel):
    seed: int = 1
    minutes: float = Field(360.0, gt=0)
    news_per_min: float = Field(40.0, ge=0)
    chat_per_min: float = Field(120.0, ge=0)
    base_negative: float = Field(0.15, ge=0, le=1)
    bad_fraction: float = Field(0.0, ge=0, le=0.5)
    start: datetime = Field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    spikes: list[SpikeSpec] = Field(default_factory=list)


def spike_plan(
    minutes: float, sizes: Iterable[float], *, first_at_min: float = 20.0,
    every_min: float = 40.0, duration_min: float = 1.5,
    targets: tuple[tuple[str, str], ...] = VISIBLE_TARGETS, seed: int = 0,
) -> list[SpikeSpec]:
    """Spikes cycling through ``sizes`` and ``targets``, one every ``every_min`` minutes
    (onset jittered within a minute so onsets do not sit on bucket boundaries)."""
    rng = random.Random(seed)
    out = []
    size_list = list(sizes)
    at, i = first_at_min, 0
    while at + duration_min < minutes and size_list:
        topic, ticker = targets[i % len(targets)]
        out.append(SpikeSpec(at_min=at + rng.uniform(0, 1), minutes=duration_min,
                             per_min=size_list[i % len(size_list)], topic=topic, ticker=ticker))
        at += every_min
        i += 1
    return out


def generate(spec: StreamSpec) -> tuple[list[DemoMessage], list[SpikeLabel]]:
    """The calm demo stream over ``spec.minutes`` plus every spike, sorted by event time."""
    cfg = DemoConfig(
        seed=spec.seed, minutes=spec.minutes, news_per_min=spec.news_per_min,
        chat_per_min=spec.chat_per_min, base_negative=spec.base_negative,
        spike_at_min=None, bad_fraction=spec.bad_fraction, start=spec.start,
    )
    gen = DemoGenerator(cfg)
    messages, _ = gen.generate()
    # A separate RNG for spike arrivals: adding a spike never changes the calm stream.
    rng = random.Random(f"spikes-{spec.seed}")
    labels: list[SpikeLabel] = []
    for sp in spec.spikes:
        t0 = sp.at_min * 60.0
        t1 = min(spec.minutes * 60.0, t0 + sp.minutes * 60.0)
        t, rate, times = t0, sp.per_min / 60.0, []
        while True:
            t += rng.expovariate(rate)
            if t >= t1:
                break
            times.append(t)
        messages += [gen.news(spec.start + timedelta(seconds=x), sp.topic, "negative",
                              ticker=sp.ticker) for x in times]
        for scope, key in (("topic", sp.topic), ("ticker", sp.ticker)):
            labels.append(SpikeLabel(
                scope=scope, key=key,
                start=spec.start + timedelta(seconds=t0),
                end=spec.start + timedelta(seconds=t1), messages=len(times),
            ))
    messages.sort(key=lambda m: m.event_time)
    return messages, labels


# --- files ------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamLine:
    kind: Kind
    value: bytes
    event_time: datetime | None  # None for a line that is not a valid JSON object


def kind_of(obj: object) -> Kind:
    """News items have a headline or published_at; everything else goes to chat."""
    if isinstance(obj, dict) and ("headline" in obj or "published_at" in obj):
        return "news"
    return "chat"


def _event_time(obj: object) -> datetime | None:
    if not isinstance(obj, dict):
        return None
    value = obj.get("published_at") or obj.get("sent_at")
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def write_stream(path: Path, messages: Iterable[DemoMessage]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("wb") as fh:
        for m in messages:
            fh.write(m.value.replace(b"\n", b" ") + b"\n")
            n += 1
    return n


def write_labels(path: Path, labels: list[SpikeLabel]) -> None:
    path.write_bytes(orjson.dumps([lb.model_dump(mode="json") for lb in labels],
                                  option=orjson.OPT_INDENT_2))


def read_stream(paths: Iterable[Path]) -> list[StreamLine]:
    """Lines of one or more JSONL files (a combined stream, or the demo's news.jsonl and
    chat.jsonl), merged in event-time order; lines without a time keep their place."""
    keyed: list[tuple[datetime, int, int, StreamLine]] = []
    for f, path in enumerate(paths):
        # A malformed line sorts with the last time seen before it in its own file.
        last = datetime.min.replace(tzinfo=UTC)
        for i, line in enumerate(_read_one(path)):
            last = line.event_time or last
            keyed.append((last, f, i, line))
    keyed.sort(key=lambda x: x[:3])
    return [x[3] for x in keyed]


def _read_one(path: Path) -> Iterator[StreamLine]:
    with path.open("rb") as fh:
        for raw in fh:
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            try:
                obj: object = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = None
            yield StreamLine(kind_of(obj), raw, _event_time(obj))
