"""Score alerts against labelled spikes: caught or missed, delay, false alerts per hour.

Used by ``streamer eval-alerts`` (alerts read back from the alerts topic after a replay
through the real pipeline) and by the offline benchmark (the same detector stepped over
scored buckets without Kafka); both speak :class:`Detected`.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from streamer.detect.core import Buckets


class Labelled(Protocol):
    """A labelled spike: ``SpikeLabel`` (the generator's) or ``labels.SpanLabel``."""

    @property
    def scope(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def messages(self) -> int: ...


@dataclass(frozen=True)
class Detected:
    """One alert, reduced to what the evaluation needs."""

    alert_id: str
    kind: str
    scope: str
    key: str
    detected_s: float  # event time (epoch s) at which the alert could be emitted
    severity: str


class SpikeResult(BaseModel):
    scope: str
    key: str
    start: datetime
    end: datetime
    messages: int
    per_min: float
    caught: bool
    delay_s: float | None = None
    alert_id: str | None = None
    severity: str | None = None
    baseline_share: float | None = Field(
        None, description="Scored negative share of the key over the baseline span before onset.")
    spike_share: float | None = Field(
        None, description="Scored negative share of the key from onset to the spike's end.")

    @property
    def ratio(self) -> float | None:
        """How many times the baseline share the spike's share is (None: unknown)."""
        if self.spike_share is None or not self.baseline_share:
            return None
        return self.spike_share / self.baseline_share


class FalseAlert(BaseModel):
    alert_id: str
    scope: str
    key: str
    detected_s: float


class EvalReport(BaseModel):
    spikes: list[SpikeResult]
    calm_hours: float
    false_alerts: list[FalseAlert]
    alerts: int

    @property
    def caught(self) -> int:
        return sum(1 for s in self.spikes if s.caught)

    @property
    def delays(self) -> list[float]:
        return [s.delay_s for s in self.spikes if s.caught and s.delay_s is not None]

    @property
    def median_delay_s(self) -> float | None:
        return statistics.median(self.delays) if self.delays else None

    def false_per_hour(self, scope: str | None = None) -> float:
        n = sum(1 for f in self.false_alerts if scope is None or f.scope == scope)
        return n / self.calm_hours if self.calm_hours > 0 else 0.0

    def qualifying(self, min_per_min: float = 20.0, min_ratio: float = 3.0
                   ) -> list[SpikeResult]:
        """Spikes the target covers: at least ``min_per_min`` spike messages a minute and
        a negative share at least ``min_ratio`` times the baseline's (when known)."""
        return [s for s in self.spikes if s.per_min >= min_per_min
                and (s.ratio is None or s.ratio >= min_ratio)]


def _intervals_union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _share(buckets: Buckets, key: tuple[str, str], t0: float, t1: float,
           skip: Iterable[tuple[float, float]] = ()) -> float | None:
    """Negative share of ``key`` over the buckets that start in [t0, t1), leaving out
    buckets that start inside a ``skip`` interval (other spikes must not count as calm)."""
    skip = list(skip)
    n = neg = 0
    for b, keys in buckets.items():
        if t0 <= b < t1 and key in keys and not any(a <= b < z for a, z in skip):
            n += keys[key][0]
            neg += keys[key][1]
    return neg / n if n else None


def evaluate(
    labels: Sequence[Labelled],
    alerts: Iterable[Detected],
    *,
    span: tuple[float, float],
    warmup_s: float,
    match_after_s: float = 90.0,
    calm_gap_s: float = 900.0,
    buckets: Buckets | None = None,
    bucket_s: int = 10,
    baseline_s: float = 1800.0,
) -> EvalReport:
    """Match each labelled spike with the first fired (or escalated) alert on its scope
    key detected in [start, end + match_after_s]; fired alerts outside every spike's
    [start - match_after_s, end + calm_gap_s] (any key: a burst about one company also
    moves the tickers its headlines name) are false. Calm hours are the span minus the
    warm-up and those spike intervals. With the scored ``buckets``, each spike also gets
    its key's negative share over ``baseline_s`` before onset and during the spike, which
    decides whether the target covers it (:meth:`EvalReport.qualifying`)."""
    fired = sorted((a for a in alerts if a.kind in ("fired", "escalated")),
                   key=lambda a: a.detected_s)
    results = []
    for lb in labels:
        start, end = lb.start.timestamp(), lb.end.timestamp()
        match = next((a for a in fired if a.scope == lb.scope and a.key == lb.key
                      and start <= a.detected_s <= end + match_after_s), None)
        minutes = max((end - start) / 60.0, 1e-9)
        before = after = None
        if buckets is not None:
            key, onset_bucket = (lb.scope, lb.key), start - start % bucket_s
            earlier = [(o.start.timestamp() - bucket_s, o.end.timestamp()) for o in labels
                       if (o.scope, o.key) == key and o.start < lb.start]
            before = _share(buckets, key, start - baseline_s, onset_bucket, earlier)
            after = _share(buckets, key, onset_bucket, end)
        results.append(SpikeResult(
            scope=lb.scope, key=lb.key, start=lb.start, end=lb.end, messages=lb.messages,
            per_min=lb.messages / minutes, caught=match is not None,
            delay_s=None if match is None else match.detected_s - start,
            alert_id=None if match is None else match.alert_id,
            severity=None if match is None else match.severity,
            baseline_share=before, spike_share=after,
        ))
    busy = _intervals_union(
        [(span[0], span[0] + warmup_s)]
        + [(lb.start.timestamp() - match_after_s, lb.end.timestamp() + calm_gap_s)
           for lb in labels]
    )
    calm_s = span[1] - span[0] - sum(
        max(0.0, min(b, span[1]) - max(a, span[0])) for a, b in busy
    )
    false = [
        FalseAlert(alert_id=a.alert_id, scope=a.scope, key=a.key, detected_s=a.detected_s)
        for a in fired if a.kind == "fired"
        and not any(x <= a.detected_s <= y for x, y in busy)
    ]
    return EvalReport(spikes=results, calm_hours=max(calm_s, 0.0) / 3600.0,
                      false_alerts=false, alerts=len(fired))
