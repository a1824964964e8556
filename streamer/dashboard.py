"""What the worker's live dashboard shows, as JSON: trends, recent alerts, latency, the
live model.

Framework-free: ``agents/views.py`` serves these from the worker (the page itself,
``agents/static/dashboard.html``, carries no data and polls them).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from prometheus_client import Counter, Gauge
from pydantic import BaseModel

from streamer.aggregate import TrendStore
from streamer.aggregate.summary import TopicAccount
from streamer.alert.store import AlertStore
from streamer.keys import Scope
from streamer.latency.histograms import END_TO_END
from streamer.latency.report import read_latency, stages_sum, window_label
from streamer.redis_client import RedisClient
from streamer.schemas.alerts import AlertRecord
from streamer.schemas.events import ModelRef

DEFAULT_WINDOW_S = 15 * 60
DEFAULT_TOP = 8
DEFAULT_POINTS = 30
# Each scope the dashboard shows, and the name of its rows in the JSON.
_SECTIONS: dict[Scope, str] = {"topic": "topics", "ticker": "tickers", "market": "markets",
                               "stream": "streams"}


async def trends_data(store: TrendStore, *, bucket_seconds: int,
                      window_s: int = DEFAULT_WINDOW_S, top: int = DEFAULT_TOP,
                      points: int = DEFAULT_POINTS) -> dict[str, Any]:
    """Per topic and stream (all), per ticker and market (the ``top`` by volume) over the
    last ``window_s`` of event time up to the newest bucket in Redis (or since the oldest,
    when that is later): totals, and per point (``step_s`` wide) messages and negatives,
    oldest first."""
    w = bucket_seconds
    window_s = max(w, window_s)
    span = await store.time_range()
    if span is None:
        return {"window_s": window_s, "step_s": w, "start": None, "end": None,
                **{name: [] for name in _SECTIONS.values()}}
    end = span[1]  # the newest bucket's start (event time): a replay of old data shows too
    start = end + w - window_s
    start = max(start - start % w, span[0])  # no empty points before the first data
    buckets = (end - start) // w + 1
    per_point = max(1, -(-buckets // max(1, points)))
    step = per_point * w
    n_points = -(-buckets // per_point)
    series: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for bucket, keys in (await store.buckets(start, end, tuple(_SECTIONS))).items():
        i = min(n_points - 1, (bucket - start) // step)
        for sk, wc in keys.items():
            n, neg = series.setdefault(sk, ([0] * n_points, [0] * n_points))
            n[i] += wc.total
            neg[i] += wc.counts.get("negative", 0)

    def row(key: str, n: list[int], neg: list[int]) -> dict[str, Any]:
        total, negatives = sum(n), sum(neg)
        return {"key": key, "messages": total, "negative": negatives,
                "negative_share": negatives / total if total else 0.0, "n": n, "neg": neg}

    out: dict[str, Any] = {"window_s": end + w - start, "step_s": step, "start": start,
                           "end": end + w}
    for scope, name in _SECTIONS.items():
        rows = sorted((r for (sc, k), v in series.items() if sc == scope
                       for r in [row(k, *v)] if r["messages"]),
                      key=lambda r: (-r["messages"], r["key"]))
        out[name] = rows[:max(0, top)] if scope in ("ticker", "market") else rows
    return out


def alert_message(rec: AlertRecord) -> str:
    """One readable line: what happened, with the window's numbers."""
    what = {"fired": "negative spike", "escalated": "escalated",
            "resolved": "back to normal"}[rec.kind]
    if rec.kind != "resolved" and rec.reason == "burst":
        what = "burst of negatives on a quiet " + rec.scope
    return (f"{what}: {rec.negatives} of {rec.messages} messages negative "
            f"({rec.negative_share:.0%}, baseline {rec.baseline_share:.0%}, z {rec.z:.1f})")


def alert_row(rec: AlertRecord) -> dict[str, Any]:
    return {
        "alert_id": rec.alert_id, "detected_at": rec.detected_at.isoformat(),
        "detected_event_time": rec.detected_event_time.isoformat(),
        "scope": rec.scope, "key": rec.key, "kind": rec.kind, "severity": rec.severity,
        "negative_share": rec.negative_share, "baseline_share": rec.baseline_share,
        "messages": rec.messages, "negatives": rec.negatives, "z": rec.z,
        "message": alert_message(rec),
        "evidence": rec.evidence[0].snippet if rec.evidence else None,
        "detection_delay_ms": rec.detection_delay_ms,
    }


async def alerts_data(store: AlertStore, *, limit: int = 30) -> dict[str, Any]:
    """The newest claimed alerts, newest first."""
    return {"alerts": [alert_row(r) for r in await store.recent(limit)]}


def model_data(scorer: str, model: ModelRef) -> dict[str, Any]:
    """The model the worker serves now (an upgrade changes it without a restart)."""
    return {"scorer": scorer, **model.model_dump(), "label": model.short()}


def _latency_view(rows: list[Any], window_s: float | None) -> dict[str, Any]:
    e2e = next((r for r in rows if r.stage == END_TO_END[0]), None)
    return {"view": window_label(window_s), "window_s": window_s,
            "stages": [r.model_dump() for r in rows if r.stage != END_TO_END[0]],
            "end_to_end": e2e.model_dump() if e2e else None,
            "stages_sum": stages_sum(rows)}


async def latency_data(client: RedisClient, prefix: str,
                       window_s: float | None = None) -> dict[str, Any]:
    """Per stage (in chain order) and end to end, merged over every worker: since each
    worker started (the top-level keys) and, with ``window_s``, over the last
    ``window_s`` seconds of wall clock (``recent``, the same keys)."""
    out = _latency_view(await read_latency(client, prefix), None)
    if window_s is not None:
        out["recent"] = _latency_view(await read_latency(client, prefix, None, window_s),
                                      window_s)
    return out


class _Sample(BaseModel):
    t: float
    totals: dict[str, tuple[int, int, int]]  # topic -> consumed, scored, dead-lettered


class RateTracker:
    """Throughput from the exact counts in Redis (every worker's): each read is a sample;
    rates are per second between the newest sample and the newest one at least
    ``window_s`` older (or the oldest kept)."""

    def __init__(self, window_s: float, keep: int = 120) -> None:
        self.window_s = window_s
        self.samples: deque[_Sample] = deque(maxlen=keep)

    def add(self, now_s: float, accounts: list[TopicAccount]) -> None:
        self.samples.append(_Sample(t=now_s, totals={
            a.topic: (a.consumed, a.scored, a.dead_lettered) for a in accounts}))

    def _base(self) -> _Sample | None:
        if len(self.samples) < 2:
            return None
        newest = self.samples[-1]
        base = self.samples[0]
        for sample in self.samples:
            if sample.t <= newest.t - self.window_s:
                base = sample
        return base if base.t < newest.t else None

    def rates(self) -> tuple[float | None, dict[str, tuple[float, float, float]]]:
        """(seconds the rates span, per topic: consumed, scored, dead-lettered per second);
        (None, {}) until there are two samples."""
        base = self._base()
        if base is None:
            return None, {}
        newest = self.samples[-1]
        dt = newest.t - base.t
        out = {}
        for topic, now in newest.totals.items():
            then = base.totals.get(topic, (0, 0, 0))
            out[topic] = (max(0, now[0] - then[0]) / dt, max(0, now[1] - then[1]) / dt,
                          max(0, now[2] - then[2]) / dt)
        return dt, out

    def series(self) -> list[dict[str, float]]:
        """Per interval between kept samples, oldest first: the time and the messages
        consumed per second over every topic."""
        pts = []
        prev: _Sample | None = None
        for sample in self.samples:
            if prev is not None and sample.t > prev.t:
                n = sum(v[0] for v in sample.totals.values()) - sum(
                    v[0] for v in prev.totals.values())
                pts.append({"t": sample.t, "consumed_per_s": max(0, n) / (sample.t - prev.t)})
            prev = sample
        return pts


def _labelled(metric: Counter | Gauge, suffix: str = "") -> list[tuple[dict[str, str], float]]:
    name = metric._name + suffix
    return [(dict(smp.labels), smp.value) for fam in metric.collect() for smp in fam.samples
            if smp.name == name]


def throughput_data(accounts: list[TopicAccount], tracker: RateTracker, now_s: float,
                    dead: Counter, lag: Gauge) -> dict[str, Any]:
    """Throughput and dead letters per input topic (every worker's, exact, from Redis:
    totals and rates), dead letters by reason and consumer lag per partition (this
    worker's own metrics: its partitions, as of its last fetch)."""
    tracker.add(now_s, accounts)
    span, rates = tracker.rates()
    topics = []
    for a in accounts:
        r = rates.get(a.topic)
        topics.append({
            "topic": a.topic, "consumed": a.consumed, "scored": a.scored,
            "dead_lettered": a.dead_lettered,
            "dead_share": a.dead_lettered / a.consumed if a.consumed else 0.0,
            "consumed_per_s": r[0] if r else None, "scored_per_s": r[1] if r else None,
            "dead_per_s": r[2] if r else None,
        })
    by_reason = sorted(((-int(v), lb.get("topic", ""), lb.get("reason", ""))
                        for lb, v in _labelled(dead, "_total") if v > 0))
    by_partition = sorted((lb.get("topic", ""), int(lb.get("partition", 0)), int(v))
                          for lb, v in _labelled(lag))
    return {"at": now_s, "rate_window_s": span, "topics": topics,
            "series": tracker.series(),
            "dead_by_reason": [{"topic": t, "reason": r, "count": -n} for n, t, r in by_reason],
            "lag": {"total": sum(n for _, _, n in by_partition),
                    "partitions": [{"topic": t, "partition": p, "lag": n}
                                   for t, p, n in by_partition]}}
