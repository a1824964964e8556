"""``eval-alerts --offline``: score, bucket and detect in-process, with evidence.

No Kafka and no Redis: the stream is scored in batches, bucketed by
:func:`streamer.evaluation.offline.score_buckets` (the worker's bucketing) and stepped
through the same detector the worker runs, so 40 days of real news evaluate in about a
minute. What a replay reads back from Redis, this keeps in memory: the scored negative
messages per scope key (:class:`EvidenceIndex`), from which each alert gets its evidence
the way the worker's engine picks it (the most negative messages from the episode's onset
to the window's end).

Which scope keys a message counts under comes from the worker's own definition
(``streamer.aggregate.scopes.scope_keys``), as in ``score_buckets``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from streamer.aggregate.scopes import scope_keys
from streamer.alert.engine import explain
from streamer.alert.windows import EvidenceItem, top_evidence
from streamer.batch.processor import SNIPPET_CHARS
from streamer.detect.core import ALL, Buckets, Decision, Detector, ScopeKey
from streamer.evaluation.offline import score_buckets
from streamer.evaluation.rows import AlertRow, EvidenceRow, headline, why_fired
from streamer.evaluation.synthetic import StreamLine
from streamer.ingest import DecodeFailure, MarketExtractor, TickerExtractor, decode, normalize
from streamer.schemas import Event, NewsItem, Origin
from streamer.schemas.events import ModelRef
from streamer.score.base import BatchScores, Scorer, Source
from streamer.settings import Settings


class CachingScorer:
    """A scorer that scores each (text, source) once: ``score_buckets`` scores the
    messages, and their scores are read back for evidence. Rows are exactly the wrapped
    scorer's."""

    def __init__(self, inner: Scorer) -> None:
        self.inner = inner
        self._rows: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def model(self) -> ModelRef:
        return self.inner.model

    @property
    def sentiment_labels(self) -> tuple[str, ...]:
        return self.inner.sentiment_labels

    @property
    def topic_labels(self) -> tuple[str, ...]:
        return self.inner.topic_labels

    def warmup(self) -> None:
        self.inner.warmup()

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        todo = list(dict.fromkeys(
            (t, s) for t, s in zip(texts, sources, strict=True) if (t, s) not in self._rows))
        if todo:
            got = self.inner.score([t for t, _ in todo], [s for _, s in todo])
            for i, pair in enumerate(todo):
                self._rows[pair] = (got.sentiment[i], got.topic[i])
        rows = [self._rows[(t, s)] for t, s in zip(texts, sources, strict=True)]
        n_sent, n_topic = len(self.sentiment_labels), len(self.topic_labels)
        sentiment = (np.stack([r[0] for r in rows]) if rows
                     else np.zeros((0, n_sent), np.float32))
        topic = np.stack([r[1] for r in rows]) if rows else np.zeros((0, n_topic), np.float32)
        return BatchScores(self.sentiment_labels, self.topic_labels, sentiment, topic)

    def negative(self, text: str, source: str) -> tuple[bool, float, str] | None:
        """(is the argmax negative, negative probability, top topic), or None if never
        scored."""
        row = self._rows.get((text, source))
        if row is None:
            return None
        i = self.sentiment_labels.index("negative")
        return (int(row[0].argmax()) == i, float(row[0][i]),
                self.topic_labels[int(row[1].argmax())])


# --- evidence -----------------------------------------------------------------------------
@dataclass(frozen=True)
class NegativeMessage:
    event_id: str
    event_s: float
    headline: str
    negative_prob: float
    snippet: str = ""  # the start of the text, as the worker keeps it (same-story check)


@dataclass
class EvidenceIndex:
    """The scored negative messages per scope key, in event-time order."""

    by_key: dict[ScopeKey, list[NegativeMessage]] = field(default_factory=dict)
    _times: dict[ScopeKey, list[float]] = field(default_factory=dict)

    def add(self, key: ScopeKey, msg: NegativeMessage) -> None:
        self.by_key.setdefault(key, []).append(msg)

    def freeze(self) -> None:
        for key, items in self.by_key.items():
            items.sort(key=lambda m: (m.event_s, m.event_id))
            self._times[key] = [m.event_s for m in items]

    def between(self, key: ScopeKey, start_s: float, end_s: float) -> list[NegativeMessage]:
        """Negative messages of ``key`` with start_s <= event time < end_s."""
        times = self._times.get(key, [])
        lo, hi = bisect.bisect_left(times, start_s), bisect.bisect_left(times, end_s)
        return self.by_key.get(key, [])[lo:hi]


def _events(lines: Iterable[StreamLine], settings: Settings) -> list[tuple[Event, str]]:
    """Each line that decodes, as its event and headline: the messages ``score_buckets``
    scores (it decodes and normalizes the same way and skips the same failures)."""
    tickers = TickerExtractor.from_csv(settings.input.symbols_file,
                                       max_tickers=settings.input.max_tickers_per_event)
    markets = MarketExtractor.from_csv(settings.input.markets_file)
    origin = Origin(topic="offline", partition=0, offset=0)
    out = []
    for line in lines:
        msg = decode(line.value, line.kind, max_bytes=settings.input.max_message_bytes)
        if isinstance(msg, DecodeFailure):
            continue
        ev = normalize(msg, origin, tickers, max_chars=settings.input.max_text_chars,
                       markets=markets)
        if isinstance(ev, DecodeFailure):
            continue
        title = msg.headline if isinstance(msg, NewsItem) else ev.text
        out.append((ev, headline(title)))
    return out


def collect_evidence(lines: Sequence[StreamLine], settings: Settings, scorer: CachingScorer,
                     scopes: Iterable[str]) -> EvidenceIndex:
    """The negative messages (by the scorer's argmax, as the worker counts them) per key."""
    wanted = set(scopes)
    index = EvidenceIndex()
    for ev, title in _events(lines, settings):
        verdict = scorer.negative(ev.text, ev.kind)
        if verdict is None or not verdict[0]:
            continue
        msg = NegativeMessage(ev.id, ev.event_time.timestamp(), title, verdict[1],
                              ev.text[:SNIPPET_CHARS])
        # The worker's own definition of an event's keys (aggregate/scopes.py).
        for key in scope_keys(ev.kind, verdict[2], ev.tickers, ev.markets):
            if key[0] in wanted:
                index.add(key, msg)
    index.freeze()
    return index


# --- detection ------------------------------------------------------------------------------
def _dt(s: float) -> datetime:
    return datetime.fromtimestamp(s, UTC)


@dataclass
class OfflineRun:
    buckets: Buckets
    rows: list[AlertRow]
    evidence: EvidenceIndex
    messages: int


def detect_rows(settings: Settings, buckets: Buckets, evidence: EvidenceIndex,
                scopes: Iterable[str]) -> list[AlertRow]:
    """Step a fresh detector over the buckets and turn each decision into an alert row
    with its evidence (as the worker's engine does).

    Only buckets that hold messages are passed in: the detector steps its live keys
    through the empty buckets between them itself and jumps over idle stretches, as it
    does when the worker's engine resumes at the next bucket Redis holds. The decisions
    are those of stepping every bucket (the detector is a function of the buckets; the
    40-day Reuters stream gives the same alert ids either way) at a fraction of the cost.
    """
    params = settings.alerts.detector(settings.aggregate.bucket_seconds)
    lateness = settings.alerts.allowed_lateness_s
    k = settings.alerts.evidence_k
    wanted = set(scopes) | {"all"}
    det = Detector(params)
    first_by_episode: dict[str, float] = {}
    rows: list[AlertRow] = []
    for b in sorted(buckets):
        counts = {key: c for key, c in buckets[b].items() if key[0] in wanted}
        for d in det.step(b, counts):
            rows.append(_row(d, evidence, first_by_episode, k=k, lateness_s=lateness))
    return rows


def _row(d: Decision, evidence: EvidenceIndex, first_by_episode: dict[str, float], *,
         k: int, lateness_s: float) -> AlertRow:
    onset = float(getattr(d, "onset", d.window_start))
    items: list[NegativeMessage] = []
    if d.kind != "resolved":
        items = evidence.between((d.scope, d.key), onset, float(d.window_end))
        if d.kind == "fired":
            first_by_episode[d.episode_id] = min((m.event_s for m in items), default=onset)
    # The engine's own choice: the k most negative, a re-sent story once.
    by_id = {m.event_id: m for m in items}
    best = [by_id[e.event_id] for e in top_evidence(
        [EvidenceItem(m.event_id, m.event_s * 1000.0, "", "", m.snippet or m.headline,
                      m.negative_prob) for m in items], k)]
    first = first_by_episode.get(d.episode_id)
    stats = d.stats
    return AlertRow(
        alert_id=d.alert_id, episode_id=d.episode_id, kind=d.kind, scope=d.scope, key=d.key,
        severity=d.severity, detected=_dt(d.window_end + lateness_s),
        first_event_time=None if first is None else _dt(first),
        window_start=_dt(d.window_start), window_end=_dt(d.window_end),
        messages=stats.messages, negatives=stats.negatives,
        negative_share=round(stats.share, 6),
        baseline_share=round(min(1.0, max(0.0, stats.baseline_share)), 6),
        z=round(d.z, 3), why=why_fired(d), sentence=explain(d),
        evidence=[EvidenceRow(event_id=m.event_id, event_time=_dt(m.event_s),
                              headline=m.headline, negative_prob=round(m.negative_prob, 4))
                  for m in best],
    )


def load_default_scorer(settings: Settings) -> Scorer:
    """The configured scorer, as a worker would load it (building the quick bundle if
    none exists). Tests replace this with a scorer that needs no model."""
    from streamer.score.select import load_scorer
    from streamer.training.quick import build_if_missing

    return load_scorer(settings, build_if_missing)


def run_offline(lines: Sequence[StreamLine], settings: Settings,
                scorer: Scorer | None = None,
                on_progress: Callable[[int], None] | None = None) -> OfflineRun:
    """Score ``lines``, bucket them like the worker, detect, and attach evidence.
    ``on_progress(n)`` hears how many lines the scoring pass has read."""
    scopes = tuple(settings.alerts.scopes)
    cache = CachingScorer(scorer if scorer is not None else load_default_scorer(settings))

    def feed() -> Iterator[tuple[str, bytes]]:
        for i, ln in enumerate(lines, 1):
            if on_progress is not None and i % 256 == 0:
                on_progress(i)
            yield ln.kind, ln.value
        if on_progress is not None:
            on_progress(len(lines))

    buckets = score_buckets(feed(), settings, cache, scopes=scopes)
    evidence = collect_evidence(lines, settings, cache, scopes)
    messages = sum(c[0] for keys in buckets.values() for key, c in keys.items() if key == ALL)
    rows = detect_rows(settings, buckets, evidence, scopes)
    return OfflineRun(buckets=buckets, rows=rows, evidence=evidence, messages=messages)
