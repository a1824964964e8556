"""One alert as the evaluation reports it, whichever way it was produced.

A replay through Kafka reads :class:`~streamer.schemas.alerts.AlertRecord` back from the
alerts topic; the offline run builds the same facts from the detector's decisions and the
scored messages it kept. Both become an :class:`AlertRow`, so the judges, the tables and
the timelines never care which. Scope kinds are plain strings: new ones (market, stream)
pass through without a change here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from streamer.evaluation.judge import Detected
from streamer.schemas.alerts import AlertRecord

# Attributes that say which window and which test fired, on a record (AlertRecord) or a
# decision (detect.core.Decision), and how to name them. Read with getattr: records from
# before these fields existed simply lack them.
_WHY_FIELDS = (("test", "test"), ("window_s", "window"), ("confirm_window_s", "confirmed by"),
               ("confirm_s", "confirmed by"))


class EvidenceRow(BaseModel):
    event_id: str
    event_time: datetime
    headline: str
    negative_prob: float


class AlertRow(BaseModel):
    alert_id: str
    episode_id: str
    kind: str
    scope: str
    key: str
    severity: str
    detected: datetime = Field(description="Event time at which the alert could be emitted.")
    first_event_time: datetime | None = None
    window_start: datetime
    window_end: datetime
    messages: int
    negatives: int
    negative_share: float
    baseline_share: float
    z: float
    why: str | None = Field(None, description="Reason, window and test, when known.")
    sentence: str | None = Field(None, description="The alert's own account of why, in words.")
    evidence: list[EvidenceRow] = Field(default_factory=list)

    @property
    def detected_s(self) -> float:
        return self.detected.timestamp()

    @property
    def fired(self) -> bool:
        return self.kind in ("fired", "escalated")


def why_fired(obj: object) -> str | None:
    """'share, window 15 min, test cusum'-style summary of whatever ``obj`` says."""
    parts: list[str] = []
    reason = getattr(obj, "reason", None)
    if reason is not None:
        parts.append(str(reason))
    for name, label in _WHY_FIELDS:
        value = getattr(obj, name, None)
        if value is None or value == "" or value == 0:  # a decision's window_s is 0 if unset
            continue
        if name.endswith("_s") and isinstance(value, int | float):
            parts.append(f"{label} {duration(float(value))}")
        else:
            parts.append(f"{label} {value}")
    return ", ".join(dict.fromkeys(parts)) or None


def duration(seconds: float) -> str:
    """60 -> '1 min', 3600 -> '1 h', 90 -> '90 s'."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def headline(snippet: str, limit: int = 110) -> str:
    """The start of a message's text, on one line: a news item's headline comes first."""
    text = " ".join(snippet.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _story_key(text: str) -> str:
    # The same wire story re-sent (a correction, a repeat) differs in case and punctuation.
    return re.sub(r"[^a-z0-9]+", "", text.lower())[:60]


def top_headlines(evidence: Iterable[EvidenceRow], k: int = 3) -> list[EvidenceRow]:
    """The ``k`` most negative evidence messages, one per story, most negative first."""
    out: list[EvidenceRow] = []
    seen: set[str] = set()
    for ev in sorted(evidence, key=lambda e: (-e.negative_prob, e.event_time, e.event_id)):
        key = _story_key(ev.headline)
        if key in seen:
            continue
        seen.add(key)
        out.append(ev)
        if len(out) == k:
            break
    return out


def from_record(r: AlertRecord) -> AlertRow:
    return AlertRow(
        alert_id=r.alert_id, episode_id=r.episode_id, kind=r.kind, scope=str(r.scope),
        key=r.key, severity=r.severity, detected=r.detected_event_time,
        first_event_time=r.first_event_time, window_start=r.window_start,
        window_end=r.window_end, messages=r.messages, negatives=r.negatives,
        negative_share=r.negative_share, baseline_share=r.baseline_share, z=r.z,
        why=why_fired(r), sentence=getattr(r, "why", None),
        evidence=[EvidenceRow(event_id=e.event_id, event_time=e.event_time,
                              headline=headline(e.snippet), negative_prob=e.negative_prob)
                  for e in r.evidence],
    )


def to_detected(rows: Iterable[AlertRow]) -> list[Detected]:
    return [Detected(r.alert_id, r.kind, r.scope, r.key, r.detected_s, r.severity)
            for r in rows]
