"""The detector over a stream without Kafka or Redis: score, bucket, step.

The buckets are built the way ``streamer.aggregate.delta`` builds them (sentiment label
counts per scope key, listed by ``streamer.aggregate.scopes``, and event-time bucket), so
a stream gives the same decisions here as in the worker. For benchmarks over many hours and
seeds, and as the reference the pipeline evaluation is compared with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from streamer.aggregate.scopes import scope_keys
from streamer.detect.core import Buckets, Detector, DetectorParams, ScopeKey
from streamer.evaluation.judge import Detected
from streamer.ingest import DecodeFailure, MarketExtractor, TickerExtractor, decode, normalize
from streamer.keys import ALERT_SCOPES
from streamer.schemas import Event, Origin
from streamer.score.base import Scorer
from streamer.settings import Settings


def score_buckets(
    lines: Iterable[tuple[str, bytes]], settings: Settings, scorer: Scorer,
    *, scopes: Iterable[str] = ALERT_SCOPES, batch: int = 1024,
) -> Buckets:
    """``(kind, raw message)`` -> per bucket start, per scope key: (messages, negatives)."""
    tickers = TickerExtractor.from_csv(settings.input.symbols_file,
                                       max_tickers=settings.input.max_tickers_per_event)
    markets = MarketExtractor.from_csv(settings.input.markets_file)
    wanted = {"all", *scopes}
    width = settings.aggregate.bucket_seconds
    acc: dict[int, dict[ScopeKey, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    pending: list[Event] = []

    def flush() -> None:
        if not pending:
            return
        scores = scorer.score([e.text for e in pending], [e.kind for e in pending])
        neg_index = scores.sentiment_labels.index("negative")
        for i, ev in enumerate(pending):
            is_neg = int(scores.sentiment[i].argmax()) == neg_index
            topic = scores.topic_labels[int(scores.topic[i].argmax())]
            ts = int(ev.event_time.timestamp())
            bucket = acc[ts - ts % width]
            # The worker's own definition (aggregate/scopes.py), so both bucket alike.
            keys = [k for k in scope_keys(ev.kind, topic, ev.tickers, ev.markets)
                    if k[0] in wanted]
            for key in keys:
                c = bucket[key]
                c[0] += 1
                c[1] += int(is_neg)
        pending.clear()

    origin = Origin(topic="offline", partition=0, offset=0)
    for kind, raw in lines:
        msg = decode(raw, kind, max_bytes=settings.input.max_message_bytes)  # type: ignore[arg-type]
        if isinstance(msg, DecodeFailure):
            continue
        ev = normalize(msg, origin, tickers, max_chars=settings.input.max_text_chars,
                       markets=markets)
        if isinstance(ev, DecodeFailure):
            continue
        pending.append(ev)
        if len(pending) >= batch:
            flush()
    flush()
    return {b: {k: (c[0], c[1]) for k, c in keys.items()} for b, keys in acc.items()}


def detect(params: DetectorParams, buckets: Buckets, *, lateness_s: float = 0.0,
           scopes: Iterable[str] = ALERT_SCOPES) -> list[Detected]:
    """Step a fresh detector over every bucket from the first to the last."""
    if not buckets:
        return []
    wanted = set(scopes) | {"all"}
    det = Detector(params)
    out: list[Detected] = []
    w = params.bucket_s
    for b in range(min(buckets), max(buckets) + 1, w):
        counts = {k: c for k, c in buckets.get(b, {}).items() if k[0] in wanted}
        for d in det.step(b, counts):
            out.append(Detected(d.alert_id, d.kind, d.scope, d.key,
                                d.window_end + lateness_s, d.severity))
    return out
