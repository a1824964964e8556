"""The scopes an event counts under: market and stream beside topic and ticker, listed by one
definition that the worker's buckets, its evidence and the offline evaluation share."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
from constant_scorer import ConstantScorer, score_phase
from redis.asyncio import Redis

from streamer.aggregate import TrendStore, build_deltas
from streamer.aggregate.scopes import event_scope_keys
from streamer.alert.windows import EventTime
from streamer.batch.processor import RawRecord
from streamer.evaluation.offline import score_buckets
from streamer.keys import ALERT_SCOPES, field, parse_field
from streamer.metrics import Metrics
from streamer.schemas import Origin, Prediction, ScoredEvent, Stamps
from streamer.schemas.export import export_schemas
from streamer.settings import Settings

T0 = datetime(1987, 3, 30, 6, 0, 0, tzinfo=UTC)


def scored(kind: str = "news", markets: list[str] | None = None, tickers: list[str] | None = None,
           label: str = "negative", offset: int = 0) -> ScoredEvent:
    probs = {"negative": 0.1, "neutral": 0.1, "positive": 0.1, label: 0.8}
    return ScoredEvent(
        id=f"e{offset}", kind=kind, source="reuters", snippet="x", tickers=tickers or [],  # type: ignore[arg-type]
        markets=markets or [], event_time=T0,
        sentiment=Prediction(label=label, probs=probs),
        topic=Prediction(label="Markets", probs={"Markets": 1.0}),
        scorer="test", origin=Origin(topic=kind, partition=0, offset=offset), stamps=Stamps(),
    )


def counts_of(events: list[ScoredEvent]) -> dict[str, int]:
    (delta,) = build_deltas(events, [], 10).values()
    (bucket,) = delta.counts.values()
    return bucket


def test_an_event_counts_under_each_market_it_names() -> None:
    counts = counts_of([scored(markets=["Dow Jones", "S&P 500"]), scored(markets=["Dow Jones"])])
    assert counts[field("market", "Dow Jones", "n", "negative")] == 2
    assert counts[field("market", "S&P 500", "n", "negative")] == 1


def test_every_news_item_counts_under_the_news_stream() -> None:
    counts = counts_of([scored(offset=i, label=lb) for i, lb in enumerate(
        ["negative", "negative", "positive"])])
    assert counts[field("stream", "news", "n", "negative")] == 2
    assert counts[field("stream", "news", "n", "positive")] == 1


def test_every_chat_line_counts_under_the_chat_stream() -> None:
    counts = counts_of([scored(kind="chat")])
    assert counts[field("stream", "chat", "n", "negative")] == 1
    assert not any(parse_field(f)[:2] == ("stream", "news") for f in counts)


def test_an_event_lists_all_topic_tickers_markets_and_its_stream() -> None:
    ev = scored(markets=["Nikkei"], tickers=["GOR", "TCOR.O"])
    assert event_scope_keys(ev) == [("all", "all"), ("topic", "Markets"), ("ticker", "GOR"),
                                    ("ticker", "TCOR.O"), ("market", "Nikkei"),
                                    ("stream", "news")]


def _store(settings: Settings) -> TrendStore:
    return TrendStore(Redis(), settings.redis, settings.aggregate)  # never connects


def test_evidence_is_kept_for_the_watched_scopes_the_buckets_count() -> None:
    settings = Settings(_env_file=None)
    ev = scored(markets=["Nikkei"], tickers=["GOR"])
    events = EventTime(_store(settings), lateness_s=0, idle_s=1, scopes=["market", "stream"],
                       evidence_retention_s=60, evidence_ttl_s=60)
    assert events._scope_keys(ev) == [("market", "Nikkei"), ("stream", "news")]
    every = EventTime(_store(settings), lateness_s=0, idle_s=1, scopes=ALERT_SCOPES,
                      evidence_retention_s=60, evidence_ttl_s=60)
    assert every._scope_keys(ev) == event_scope_keys(ev)[1:]  # all but the internal prior


# --- the worker and the offline evaluation bucket alike ---------------------------------
LINES = [
    ("news", {"headline": "TOKYO STOCKS PLUNGE 502.98 DUE TO YEN RISE",
              "body": "The Nikkei average fell; the Dow Jones industrial average followed."}),
    ("news", {"headline": "GORDON JEWELRY CORP <GOR> 4TH QTR NET", "body": "Shr 1.10 dlrs."}),
    ("news", {"headline": "WALL STREET STOCKS LOWER IN LATE TRADING",
              "body": "Exxon <XOM> fell as the S and P 500 index slid."}),
    ("news", {"headline": "DOW CHEMICAL LAUNCHES 200 MLN SWISS FRANC BOND"}),
    ("chat", {"text": "$XOM and the FTSE 100 both down hard"}),
]


def raw_lines() -> list[tuple[str, bytes]]:
    out = []
    for i, (kind, fields) in enumerate(LINES):
        at = (T0.replace(second=i)).isoformat()
        msg = ({"id": f"n{i}", "source": "reuters", "published_at": at, **fields}
               if kind == "news" else
               {"id": f"c{i}", "channel": "desk", "author": "u1", "sent_at": at, **fields})
        out.append((kind, orjson.dumps(msg)))
    return out


def test_the_offline_path_and_the_worker_list_the_same_scope_keys() -> None:
    settings = Settings(_env_file=None).replace(bucket_seconds=60)
    topic = {"news": settings.topics.news, "chat": settings.topics.chat}
    records = [RawRecord(topic[kind], 0, i, raw) for i, (kind, raw) in enumerate(raw_lines())]
    out = score_phase(settings, records, Metrics())
    assert len(out.scored) == len(LINES)
    worker: dict[tuple[str, str], int] = {}
    for delta in build_deltas(out.scored, [], settings.aggregate.bucket_seconds).values():
        for bucket in delta.counts.values():
            for name, n in bucket.items():
                scope, key, _, _ = parse_field(name)
                worker[(scope, key)] = worker.get((scope, key), 0) + n
    offline: dict[tuple[str, str], int] = {}
    for keys in score_buckets(raw_lines(), settings, ConstantScorer()).values():
        for sk, (n, _) in keys.items():
            offline[sk] = offline.get(sk, 0) + n
    assert offline == worker
    assert {("market", "Nikkei"), ("market", "Dow Jones"), ("market", "NYSE"),
            ("market", "S&P 500"), ("market", "FTSE 100"), ("ticker", "GOR"),
            ("stream", "news"), ("stream", "chat")} <= set(worker)
    assert worker[("stream", "news")] == 4 and worker[("stream", "chat")] == 1


# --- the settings and the wire accept them ---------------------------------------------
def test_the_detector_watches_every_scope_named_by_data_by_default() -> None:
    assert Settings(_env_file=None).alerts.scopes == ("topic", "ticker", "market", "stream")


def test_a_scored_record_from_before_markets_still_validates() -> None:
    old = orjson.loads(scored().model_dump_json())
    del old["markets"]
    assert ScoredEvent.model_validate(old).markets == []


def test_the_alert_schema_names_every_scope_the_detector_may_watch(tmp_path: Path) -> None:
    schema = json.loads(next(p for p in export_schemas(tmp_path)
                             if p.name == "alert.schema.json").read_text())
    assert set(schema["properties"]["scope"]["enum"]) == set(ALERT_SCOPES)
