"""Kafka record headers on what the worker writes: what a consumer filters on without
parsing the value (which schema, which version, which encoding, which model)."""

from __future__ import annotations

from typing import Literal

from streamer.schemas.events import ModelRef
from streamer.schemas.inputs import SCHEMA_VERSION

# Header names; values are UTF-8.
SCHEMA = "schema"  # scored, dead-letter or alert (the exported <name>.schema.json)
SCHEMA_VERSION_HEADER = "schema-version"  # the record's schema_version, e.g. "1"
CONTENT_TYPE = "content-type"  # always application/json
MODEL_ID = "model-id"  # scored events: the bundle id (content hash) that scored it
MODEL = "model"  # scored events: bundle/variant@id, readable
REASON = "reason"  # dead letters: why (the record's reason)

JSON = "application/json"
RecordSchema = Literal["scored", "dead-letter", "alert"]
Headers = list[tuple[str, bytes]]


def record_headers(schema: RecordSchema, *, model: ModelRef | None = None,
                   reason: str | None = None) -> Headers:
    """The headers of one record of ``schema``."""
    headers: Headers = [
        (SCHEMA, schema.encode()),
        (SCHEMA_VERSION_HEADER, str(SCHEMA_VERSION).encode()),
        (CONTENT_TYPE, JSON.encode()),
    ]
    if model is not None:
        headers += [(MODEL_ID, model.bundle_id.encode()), (MODEL, model.short().encode())]
    if reason is not None:
        headers.append((REASON, reason.encode()))
    return headers
