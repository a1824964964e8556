"""One micro-batch end to end, independent of the stream framework.

The Faust agent hands over raw records and gets back what to publish; this module
decodes, normalizes, scores (in an executor, off the event loop) and applies the
aggregates to Redis exactly once per input offset.

Two phases, so that a caller can overlap them across batches: ``score`` has no side
effect outside the process (decode, tokenize, infer), ``aggregate`` writes to Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.aggregate import TrendStore, build_deltas
from streamer.ingest import DecodeFailure, MarketExtractor, TickerExtractor, decode, normalize
from streamer.ingest.eventtime import check_event_time
from streamer.latency import Clock, LatencyRecorder, requested_at
from streamer.metrics import Metrics
from streamer.schemas import DeadLetter, Event, Origin, Prediction, ScoredEvent, Stamps
from streamer.schemas.events import Kind
from streamer.schemas.types import Label, SentimentLabel
from streamer.score import BatchScores, Scorer
from streamer.score.pool import ScoringPool
from streamer.settings import InputSettings, TopicSettings

log = logging.getLogger(__name__)
SNIPPET_CHARS = 280
# Distinct unknown field names logged per worker; past it, they are only counted.
_UNKNOWN_NAMES_LOGGED = 100


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int | None = None
    consumed_ms: float | None = None
    # When the worker's stream was last ready for a record before taking this one
    # (agents/runtime.py ConsumeStamps); None: unknown, the wait counts as transit.
    ready_ms: float | None = None


@dataclass
class BatchOutput:
    scored: list[ScoredEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    skipped: int = 0  # records whose aggregates were already applied (a replay)
    records: int = 0  # input records of the batch
    # The raw record behind each scored event, for a dead letter made after scoring
    # (an upstream repeat of an event id).
    raw: dict[tuple[str, int, int], RawRecord] = field(default_factory=dict)

    def end_to_end_ms(self) -> list[float]:
        """Record timestamp -> Redis ack of each scored event (the latency recorder's
        end_to_end), for those that carry both stamps."""
        return [ev.stamps.aggregated - ev.stamps.produced for ev in self.scored
                if ev.stamps.aggregated is not None and ev.stamps.produced is not None]


def _prediction(labels: tuple[str, ...], row: np.ndarray,
                kind: type[Prediction[Any]] = Prediction) -> Prediction[Any]:
    # ``kind``: the head's parametrized class, which ScoredEvent takes without revalidating.
    return kind(
        label=labels[int(row.argmax())],
        probs={lb: round(float(p), 6) for lb, p in zip(labels, row, strict=True)},
    )


class BatchProcessor:
    def __init__(
        self,
        inputs: InputSettings,
        topics: TopicSettings,
        pool: ScoringPool,
        store: TrendStore,
        *,
        tickers: TickerExtractor | None = None,
        markets: MarketExtractor | None = None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        latency: LatencyRecorder | None = None,
    ) -> None:
        self.inputs = inputs
        self.topics = topics
        self.pool = pool  # its scorer is read per batch: a model upgrade swaps it
        self.store = store
        self.tickers = tickers or TickerExtractor.from_csv(
            inputs.symbols_file, max_tickers=inputs.max_tickers_per_event
        )
        self.markets = markets or MarketExtractor.from_csv(inputs.markets_file)
        self.clock = clock or Clock()
        self.metrics = metrics or Metrics()
        self.latency = latency or LatencyRecorder()
        self._kinds: dict[str, Kind] = {topics.news: "news", topics.chat: "chat"}
        self._unknown_seen: set[tuple[str, str]] = set()

    def kind_of(self, topic: str) -> Kind:
        return self._kinds[topic]

    async def score(self, records: Sequence[RawRecord]) -> BatchOutput:
        """Decode and score; dead-letter what fails. Nothing leaves the process yet.

        The whole batch is scored by the scorer live when it starts, which its records
        name, even when a model upgrade swaps the pool's scorer meanwhile."""
        scorer = self.pool.scorer
        batched = self.clock.now_ms()
        out = BatchOutput(records=len(records))
        events: list[Event] = []
        for rec in records:
            self.metrics.consumed.labels(rec.topic).inc()
            result = self._decode(rec)
            if not isinstance(result, DecodeFailure):
                result = check_event_time(result, batched, self.inputs.max_future_skew_s)
            if isinstance(result, DecodeFailure):
                out.dead.append(self._dead_letter(result, rec))
                continue
            produced = float(rec.timestamp_ms) if rec.timestamp_ms is not None else None
            consumed = rec.consumed_ms if rec.consumed_ms is not None else batched
            result.stamps = Stamps(
                produced=produced,
                requested=requested_at(produced, rec.ready_ms, consumed),
                consumed=consumed,
                batched=batched,
            )
            events.append(result)
            out.raw[(rec.topic, rec.partition, rec.offset)] = rec

        if events:
            scores = await self._score(events, scorer)
            if scores is None:
                # The scorer failed on the whole batch: score one by one so a single
                # poisonous text is dead-lettered and the rest go through.
                out.scored, failed = await self._score_individually(events, records, scorer)
                out.dead.extend(failed)
            else:
                out.scored = self._build_scored(events, scores, scorer)
        return out

    async def aggregate(self, out: BatchOutput) -> BatchOutput:
        """Apply a scored batch to Redis (once per offset), stamp and count it; first,
        upstream repeats of an event id become dead letters (``STREAMER_DEDUP_WINDOW_MESSAGES``)."""
        if self.store.dedup_window_messages > 0:
            await self._drop_repeats(out)
        await self._aggregate(out)
        aggregated = self.clock.now_ms()
        for ev in out.scored:
            ev.stamps.aggregated = aggregated
            self.metrics.scored.labels(ev.origin.topic).inc()
            self.metrics.sentiment.labels(ev.kind, ev.topic.label, ev.sentiment.label).inc()
        for d in out.dead:
            self.metrics.dead.labels(d.topic, d.reason).inc()
        self.metrics.batch_size.observe(out.records)
        self.latency.record(ev.stamps for ev in out.scored)
        return out

    def _decode(self, rec: RawRecord) -> Event | DecodeFailure:
        msg = decode(rec.value, self.kind_of(rec.topic),
                     max_bytes=self.inputs.max_message_bytes,
                     strict=self.inputs.schema_strict,
                     on_unknown=lambda names: self._unknown_fields(rec.topic, names))
        if isinstance(msg, DecodeFailure):
            return msg
        origin = Origin(topic=rec.topic, partition=rec.partition, offset=rec.offset)
        return normalize(msg, origin, self.tickers, max_chars=self.inputs.max_text_chars,
                         on_dropped_ticker=lambda why: self.metrics.tickers_dropped.labels(
                             rec.topic, why).inc(), markets=self.markets)

    def _unknown_fields(self, topic: str, names: list[str]) -> None:
        """Count a record accepted without its unknown fields; log each new name once
        (names come from the input: bounded in number and printed escaped)."""
        self.metrics.unknown_fields.labels(topic).inc()
        new = [n for n in names if (topic, n) not in self._unknown_seen]
        if new and len(self._unknown_seen) < _UNKNOWN_NAMES_LOGGED:
            self._unknown_seen.update((topic, n) for n in new)
            log.warning("topic %s: ignoring unknown field(s) %s (counted in "
                        "streamer_unknown_fields_total; STREAMER_SCHEMA_STRICT=true "
                        "dead-letters such records)", topic,
                        ", ".join(ascii(n[:64]) for n in new[:5]))

    def _dead_letter(self, failure: DecodeFailure, rec: RawRecord) -> DeadLetter:
        return failure.dead_letter(
            rec.value or b"",
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            record_timestamp_ms=rec.timestamp_ms,
        )

    async def _score(self, events: list[Event], scorer: Scorer) -> BatchScores | None:
        try:
            return await self.pool.score([e.text for e in events], [e.kind for e in events],
                                         scorer)
        except Exception:
            log.exception("scoring a batch of %d failed; retrying one by one", len(events))
            return None

    async def _score_individually(
        self, events: list[Event], records: Sequence[RawRecord], scorer: Scorer
    ) -> tuple[list[ScoredEvent], list[DeadLetter]]:
        by_offset = {(r.topic, r.partition, r.offset): r for r in records}
        ok: list[ScoredEvent] = []
        failed: list[DeadLetter] = []
        for ev in events:
            scores = await self._score([ev], scorer)
            if scores is None:
                rec = by_offset[(ev.origin.topic, ev.origin.partition, ev.origin.offset)]
                failure = DecodeFailure("scoring_failed", "the scorer raised on this text")
                failed.append(self._dead_letter(failure, rec))
            else:
                ok.extend(self._build_scored([ev], scores, scorer))
        return ok, failed

    def _build_scored(self, events: list[Event], scores: BatchScores,
                      scorer: Scorer) -> list[ScoredEvent]:
        inferred = self.clock.now_ms()
        batched = events[0].stamps.batched or inferred
        tokenized = batched + scores.tokenize_s * 1000.0
        out = []
        for i, ev in enumerate(events):
            stamps = ev.stamps.model_copy(update={"tokenized": tokenized, "inferred": inferred})
            out.append(ScoredEvent(
                id=ev.id,
                kind=ev.kind,
                source=ev.source,
                snippet=ev.text[:SNIPPET_CHARS],
                tickers=ev.tickers,
                markets=ev.markets,
                event_time=ev.event_time,
                sentiment=_prediction(scores.sentiment_labels, scores.sentiment[i],
                                      Prediction[SentimentLabel]),
                topic=_prediction(scores.topic_labels, scores.topic[i], Prediction[Label]),
                scorer=scorer.name,
                model=scorer.model,
                origin=ev.origin,
                stamps=stamps,
            ))
        return out

    async def _drop_repeats(self, out: BatchOutput) -> None:
        """Move events whose id their partition already carried to the dead letters."""
        by_partition: dict[tuple[str, int], list[ScoredEvent]] = {}
        for ev in out.scored:
            by_partition.setdefault((ev.origin.topic, ev.origin.partition), []).append(ev)
        for events in by_partition.values():
            events.sort(key=lambda e: e.origin.offset)
        answers = await asyncio.gather(*(  # one round trip per partition, side by side
            self.store.first_seen(topic, partition, [(e.origin.offset, e.id) for e in events])
            for (topic, partition), events in by_partition.items()))
        repeats: set[int] = set()
        for ((topic, partition), events), firsts in zip(by_partition.items(), answers,
                                                        strict=True):
            for ev, first in zip(events, firsts, strict=True):
                if first is None:
                    continue
                repeats.add(id(ev))
                rec = out.raw[(topic, partition, ev.origin.offset)]
                failure = DecodeFailure("duplicate_id", (
                    f"event id {ev.id[:64]!r} already arrived at offset {first} of "
                    f"{topic}[{partition}]; a repeat within the last "
                    f"{self.store.dedup_window_messages} messages is not counted "
                    "again "
                    "(STREAMER_DEDUP_WINDOW_MESSAGES)"))
                out.dead.append(self._dead_letter(failure, rec))
        if repeats:
            out.scored = [ev for ev in out.scored if id(ev) not in repeats]

    async def _aggregate(self, out: BatchOutput) -> None:
        width = self.store.bucket_seconds
        # Dead letters count as done in Redis too (their offsets advance the watermark).
        dead = [(d.topic, d.partition, d.offset) for d in out.dead]
        for (topic, partition), delta in build_deltas(out.scored, dead, width).items():
            skipped = 0
            result = await self.store.apply(delta)
            if result.status == "partial":
                # A replay straddles the watermark: apply only what lies above it.
                wm = result.watermark
                rest = build_deltas(
                    [e for e in out.scored if e.origin.topic == topic
                     and e.origin.partition == partition and e.origin.offset > wm],
                    [d for d in dead if d[:2] == (topic, partition) and d[2] > wm],
                    width,
                ).get((topic, partition))
                if rest is not None:
                    result = await self.store.apply(rest)
                skipped = len(delta.offsets) - (len(rest.offsets) if rest else 0)
            elif result.status == "duplicate":
                skipped = len(delta.offsets)
            if skipped:
                out.skipped += skipped
                self.metrics.duplicates.labels(topic).inc(skipped)
