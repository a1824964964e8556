"""The Redis-backed detector: closed buckets -> pure detector -> claimed alert records.

One engine per worker. ``observe`` records a batch's progress and evidence;
``evaluate`` steps the detector over the buckets the watermark has closed since the
shared cursor and commits states, cursor and alerts atomically (see alert/store.py).
Work per call is bounded by ``STREAMER_ALERT_MAX_BUCKETS_PER_CALL``; an empty stretch with
nothing live is jumped over (to the next bucket Redis holds), not read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from streamer.aggregate.store import TrendStore
from streamer.alert.metrics import AlertMetrics
from streamer.alert.store import AlertStore
from streamer.alert.windows import EventTime, top_evidence
from streamer.detect.core import Decision, Detector
from streamer.keys import AlertScope
from streamer.schemas import ScoredEvent
from streamer.schemas.alerts import AlertRecord, Evidence
from streamer.settings import AlertSettings

log = logging.getLogger(__name__)


def _dt(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC)


def span(seconds: int) -> str:
    """'60 s', '15 min', '6 h'."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 and seconds >= 120 else f"{seconds} s"


def explain(d: Decision) -> str:
    """The decision in one sentence, for the person reading the alert."""
    s = d.stats
    seen = (f"{s.negatives} of {s.messages} messages negative ({s.share:.0%}) over the last "
            f"{span(d.window_s)}" if d.window_s else
            f"{s.negatives} of {s.messages} messages negative ({s.share:.0%})")
    if d.kind == "resolved":
        return f"Back near the baseline: {seen}, baseline {s.baseline_share:.0%}."
    test = ("a burst of negatives on a quiet scope (Poisson tail)" if d.reason == "burst"
            else f"share test z {d.z:.1f}")
    text = f"{seen} against a baseline of {s.baseline_share:.0%}: {test}"
    if d.confirm_s:
        text += f"; confirmed by the last {span(d.confirm_s)}"
    return text + "."


@dataclass(frozen=True)
class Evaluation:
    alerts: list[AlertRecord]
    behind: bool  # more closed buckets wait: call again soon
    watermark_ms: float | None = None
    cursor: int | None = None


class AlertEngine:
    def __init__(self, alerts: AlertSettings, trends: TrendStore, *,
                 clock_ms: Callable[[], float], worker_id: str,
                 metrics: AlertMetrics | None = None) -> None:
        self.alerts = alerts
        self.params = alerts.detector(trends.bucket_seconds)
        self.trends = trends
        self.clock_ms = clock_ms
        self.worker_id = worker_id
        self.metrics = metrics or AlertMetrics()
        window = self.params.buckets * self.params.bucket_s
        self.events = EventTime(
            trends,
            lateness_s=alerts.allowed_lateness_s,
            idle_s=alerts.idle_partition_s,
            scopes=alerts.scopes,
            # Evidence must outlive the longest window plus the time evaluation may lag.
            evidence_retention_s=max(10 * window, 600, self.params.longest_s + 600),
            evidence_ttl_s=trends.bucket_ttl_s,
        )
        self.store = AlertStore(trends.redis, trends.keys.prefix,
                                claim_ttl_s=alerts.claim_ttl_s)
        self._det: Detector | None = None
        self._lock = asyncio.Lock()

    async def observe(self, events: Sequence[ScoredEvent]) -> None:
        if events:
            await self.events.observe(events, self.clock_ms())

    async def evaluate(self) -> Evaluation:
        """Evaluate newly closed buckets; returns the alerts this worker claimed."""
        async with self._lock:
            try:
                return await self._evaluate()
            except BaseException:
                self._det = None  # possibly stepped without a commit: reload next time
                raise

    async def _evaluate(self) -> Evaluation:
        a, p = self.alerts, self.params
        w = p.bucket_s
        now = self.clock_ms()
        wm = await self.events.watermark_ms(now)
        if wm is None:
            return Evaluation([], False)
        self.metrics.watermark_lag.set(max(0.0, (now - wm) / 1000.0))
        target = int(wm // 1000) // w * w - w  # newest bucket whose end <= watermark
        cursor = await self.store.cursor()
        if self._det is None or self._det.cursor != cursor:
            snap = await self.store.snapshot()
            self._det = Detector(p, dict(snap.states), snap.cursor, snap.origin)
        det = self._det
        if det.cursor is None:
            span = await self.trends.time_range()
            if span is None:
                return Evaluation([], False, wm)
            # Begin at the oldest bucket Redis holds (bounded by bootstrap_s when set): a
            # backfill into a fresh worker is judged from its first story, as live.
            lo = span[0] if a.bootstrap_s == 0 else max(span[0], target - a.bootstrap_s)
            first = await self.trends.first_bucket(lo, target)
            if first is None:
                return Evaluation([], False, wm)
            start = first // w * w
        else:
            start = det.cursor + w
        if start > target:
            return Evaluation([], False, wm, det.cursor)
        end = min(target, start + (a.max_buckets_per_call - 1) * w)
        starts = list(range(start, end + 1, w))
        counts = await self.events.read_buckets(starts)
        if (end < target and det.cursor is not None and det.idle
                and not any(n for c in counts.values() for n, _ in c.values())):
            # Nothing live and nothing here: resume at the next bucket Redis holds rather
            # than read an empty stretch (years, after a stray old event) chunk by chunk.
            nxt = await self.trends.first_bucket(end + w, target)
            start = target if nxt is None else nxt
            end = min(target, start + (a.max_buckets_per_call - 1) * w)
            starts = list(range(start, end + 1, w))
            counts = await self.events.read_buckets(starts)
        expected = det.cursor
        decisions: list[Decision] = []
        for b in starts:
            decisions += det.step(b, counts.get(b, {}))
        records = [await self._record(det, d, now) for d in decisions]
        changed, removed = det.take_changes()
        assert det.cursor is not None and det.origin is not None
        result = await self.store.commit(
            expected_cursor=expected, cursor=det.cursor, origin=det.origin,
            changed=changed, removed=removed, alerts=records,
            webhook=bool(a.webhook_url), webhook_max_pending=a.webhook_max_pending,
        )
        self.metrics.buckets.inc(len(starts))
        if not result.committed:
            # Another worker committed these buckets first; its alerts stand.
            self.metrics.conflicts.inc()
            self._det = None
            return Evaluation([], True, wm)
        if result.webhook_dropped:
            self.metrics.webhook_failed.inc(result.webhook_dropped)
        claimed = set(result.claimed)
        mine = [r for r in records if r.alert_id in claimed]
        for r in mine:
            self.metrics.claimed.labels(r.kind, r.severity).inc()
            log.info("alert %s (%s, z=%.1f, share %.0f%% vs %.0f%%)", r.alert_id, r.severity,
                     r.z, 100 * r.negative_share, 100 * r.baseline_share)
        return Evaluation(mine, end < target, wm, det.cursor)

    async def _record(self, det: Detector, d: Decision, now_ms: float) -> AlertRecord:
        st = det.states[(d.scope, d.key)]
        k = self.alerts.evidence_k
        evidence: list[Evidence] = []
        first_ms = st.first_event_ms
        first_produced_ms: float | None = None
        if d.kind != "resolved":
            items = await self.events.evidence(d.scope, d.key, d.onset * 1000.0,
                                               d.window_end * 1000.0)
            if d.kind == "fired":
                first = min(items, key=lambda i: (i.event_ms, i.event_id), default=None)
                first_ms = d.onset * 1000.0 if first is None else first.event_ms
                first_produced_ms = None if first is None else first.produced_ms
                st.first_event_ms = first_ms  # carried to escalated/resolved records
            evidence = [
                Evidence(event_id=i.event_id, event_time=_dt(i.event_ms), source=i.source,
                         kind=cast(Literal["news", "chat"], i.kind), snippet=i.snippet[:280],
                         negative_prob=min(1.0, max(0.0, i.negative_prob)))
                for i in top_evidence(items, k)
            ]
        detected_ms = d.window_end * 1000.0 + self.alerts.allowed_lateness_s * 1000.0
        st_stats = d.stats
        return AlertRecord(
            alert_id=d.alert_id,
            episode_id=d.episode_id,
            kind=d.kind,
            scope=cast(AlertScope, d.scope),
            key=d.key,
            severity=d.severity,
            reason=d.reason,
            window_s=d.window_s or None,
            confirm_window_s=d.confirm_s,
            why=explain(d),
            window_start=_dt(d.window_start * 1000.0),
            window_end=_dt(d.window_end * 1000.0),
            messages=st_stats.messages,
            negatives=st_stats.negatives,
            negative_share=round(st_stats.share, 6),
            baseline_share=round(min(1.0, max(0.0, st_stats.baseline_share)), 6),
            baseline_messages=round(max(0.0, st_stats.baseline_messages), 3),
            z=round(d.z, 3),
            evidence=evidence,
            first_event_time=_dt(first_ms) if first_ms is not None else None,
            first_event_produced_at=(_dt(first_produced_ms) if first_produced_ms is not None
                                     else None),
            detected_event_time=_dt(detected_ms),
            detected_at=_dt(now_ms),
            detection_latency_ms=None if first_ms is None else round(now_ms - first_ms, 1),
            detection_delay_ms=None if first_ms is None else round(detected_ms - first_ms, 1),
            worker=self.worker_id[:200],
        )
