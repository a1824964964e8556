"""What the worker's live dashboard shows, as JSON: trends, recent alerts, latency, the
live model.

Framework-free: ``agents/views.py`` serves these from the worker (the page itself,
``agents/static/dashboard.html``, carries no data and polls them).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from streamer.aggregate import TrendStore
from streamer.alert.store import AlertStore
from streamer.keys import Scope
from streamer.latency.histograms import END_TO_END
from streamer.latency.report import read_latency, stages_sum
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


async def latency_data(client: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """Per stage (in chain order) and end to end, merged over every worker."""
    rows = await read_latency(client, prefix)
    e2e = next((r for r in rows if r.stage == END_TO_END[0]), None)
    return {"stages": [r.model_dump() for r in rows if r.stage != END_TO_END[0]],
            "end_to_end": e2e.model_dump() if e2e else None,
            "stages_sum": stages_sum(rows)}
