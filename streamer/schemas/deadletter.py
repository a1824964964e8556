"""Dead-letter records: an input that could not be decoded or validated, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from streamer.schemas.inputs import SCHEMA_VERSION, WireModel

Reason = Literal[
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "unknown_kind",
    "validation_failed",
    "empty_text",
    "text_too_long",
    "event_time_future",  # further ahead of the worker's clock than max_future_skew_s
    "scoring_failed",
    "duplicate_id",  # the partition carried the same event id within the dedup window
]


class DeadLetter(WireModel):
    """Written to ``<input topic>.dlq``.

    ``original_b64`` holds the raw bytes, cut to ``original_kept_bytes`` so the
    record itself fits under the broker's size limit; ``origin`` finds the full
    original in the input topic and ``original_sha256`` checks it.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    reason: Reason
    error: str = Field(description="Readable explanation: what was wrong and where.")
    original_b64: str
    original_size: int = Field(ge=0)
    original_kept_bytes: int = Field(ge=0)
    original_sha256: str
    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    record_timestamp_ms: int | None = None
    dead_lettered_at: datetime
