"""The alert record written to the alerts topic (and POSTed to the optional webhook)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from streamer.keys import ALERT_ID_PATTERN, AlertScope
from streamer.schemas.inputs import SCHEMA_VERSION, WireModel
from streamer.schemas.types import Identifier, Label, UtcDatetime

# Scope keys are topic labels or tickers, exactly as the model and the input name them
# ("Energy | Oil", "BRK.B"): the label alphabet of streamer/keys.py.
ScopeKeyName = Label
# Built from the scope key's key encoding (streamer/keys.py episode_id), so an id is a
# safe identifier whatever the name: 'topic:Energy%20%7C%20Oil:1767344400:fired'.
AlertId = Annotated[str, StringConstraints(pattern=ALERT_ID_PATTERN)]
Severity = Literal["warning", "major", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warning", "major", "critical")
AlertKind = Literal["fired", "escalated", "resolved"]
SEVERITY_ORDER: dict[str, int] = {"warning": 0, "major": 1, "critical": 2}


class Evidence(BaseModel):
    """One negative message in the window that fired, for a human to look at."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # as WireModel

    event_id: Identifier
    event_time: UtcDatetime
    source: Identifier
    kind: Literal["news", "chat"]
    snippet: str = Field(max_length=280)
    negative_prob: float = Field(ge=0, le=1)


class AlertRecord(WireModel):
    """A negative-sentiment spike on one scope key (a topic, ticker, market or the whole
    news or chat stream): fired, escalated or resolved.

    Written to the alerts topic keyed by ``<scope>:<key>``, so one partition holds a
    scope key's alerts in order. Delivery is at least once (an outbox in Redis is
    re-sent until acknowledged, also after a crash): consumers drop repeats by
    ``alert_id``, which is deterministic per episode and kind.

    Times: ``first_event_time`` is the event time of the spike's first negative message
    (estimated from the window); ``detected_event_time`` is the event time the stream
    had reached when the alert was decided (the watermark); ``detected_at`` is the wall
    clock then. ``detection_latency_ms`` = detected_at - first_event_time is the alert
    latency of a live stream; a replay's delay is ``detection_delay_ms``, in event time.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: AlertId
    episode_id: AlertId = Field(description="Shared by the fired/escalated/resolved records "
                                "of one episode: '<scope>:<key>:<fired bucket>'.")
    kind: AlertKind
    scope: AlertScope
    key: ScopeKeyName
    severity: Severity
    reason: Literal["share", "burst"] | None = Field(
        None, description="Why it fired: the share test, or a burst on a quiet scope."
    )
    window_s: int | None = Field(
        None, ge=1, description="Length (s) of the window whose test decided this: the "
        "short window (or its trailing part that fired), or a long window.")
    confirm_window_s: int | None = Field(
        None, ge=1, description="Long windows: the shorter window that agreed the shift is "
        "still happening (the multi-window rule).")
    why: str | None = Field(
        None, max_length=400, description="Why it fired, escalated or resolved, in words.")
    window_start: UtcDatetime
    window_end: UtcDatetime
    messages: int = Field(ge=0, description="Messages in the window that decided.")
    negatives: int = Field(ge=0, description="Negative messages in that window.")
    negative_share: float = Field(ge=0, le=1, description="Negative share in the window now.")
    baseline_share: float = Field(ge=0, le=1, description="Baseline negative share.")
    baseline_messages: float = Field(ge=0, description="Expected messages per window.")
    z: float
    evidence: list[Evidence] = Field(default_factory=list, max_length=50)
    first_event_time: UtcDatetime | None = None
    first_event_produced_at: UtcDatetime | None = Field(
        None, description="Fired alerts: the Kafka record timestamp of the spike's first "
        "negative message (its producer's clock). Alert latency = the alert's append to the "
        "alerts topic - this; the worker measures it (streamer latency, row 'alert').")
    detected_event_time: UtcDatetime
    detected_at: UtcDatetime
    detection_latency_ms: float | None = None
    detection_delay_ms: float | None = Field(
        None, description="detected_event_time - first_event_time (event time)."
    )
    worker: str = Field(max_length=200, description="Worker that claimed the alert.")

    @property
    def kafka_key(self) -> bytes:
        return f"{self.scope}:{self.key}".encode()
