"""Decode and validate raw input bytes; every failure carries a reason and a readable error."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from streamer.schemas import ChatMessage, DeadLetter, InputMessage, NewsItem
from streamer.schemas.deadletter import Reason
from streamer.schemas.events import Kind
from streamer.schemas.inputs import StrictChatMessage, StrictNewsItem, unknown_fields

_MODELS: dict[Kind, type[NewsItem] | type[ChatMessage]] = {
    "news": NewsItem,
    "chat": ChatMessage,
}
# STREAMER_SCHEMA_STRICT: unknown fields are a validation failure.
_STRICT_MODELS: dict[Kind, type[NewsItem] | type[ChatMessage]] = {
    "news": StrictNewsItem,
    "chat": StrictChatMessage,
}
# Called with the unknown field names of a message that was accepted without them.
OnUnknown = Callable[[list[str]], None]
# Enough of the original to debug it, small enough that a DLQ record always fits.
DLQ_KEEP_BYTES = 65_536


@dataclass(frozen=True)
class DecodeFailure:
    reason: Reason
    error: str

    def dead_letter(
        self,
        raw: bytes,
        *,
        topic: str,
        partition: int,
        offset: int,
        record_timestamp_ms: int | None,
    ) -> DeadLetter:
        kept = raw[:DLQ_KEEP_BYTES]
        return DeadLetter(
            reason=self.reason,
            error=self.error,
            original_b64=base64.b64encode(kept).decode("ascii"),
            original_size=len(raw),
            original_kept_bytes=len(kept),
            original_sha256=hashlib.sha256(raw).hexdigest(),
            topic=topic,
            partition=partition,
            offset=offset,
            record_timestamp_ms=record_timestamp_ms,
            dead_lettered_at=datetime.now(UTC),
        )


def _printable(value: object, limit: int = 64) -> str:
    """``value`` for an error message: controls and odd characters escaped, length bounded.

    Field names come from the input (an unknown field is reported by name), so they
    must not smuggle terminal escapes or megabytes into logs and dead letters.
    """
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in str(value)[: limit + 1])
    return text if len(text) <= limit else f"{text[:limit]}..."


def _describe(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        where = ".".join(_printable(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {_printable(err['msg'], 300)}")
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def decode(raw: bytes | None, kind: Kind, *, max_bytes: int, strict: bool = False,
           on_unknown: OnUnknown | None = None) -> InputMessage | DecodeFailure:
    """Parse ``raw`` as the ``kind`` schema. Never raises for bad input.

    Fields the schema does not know are ignored and reported to ``on_unknown`` (once the
    message is otherwise valid); with ``strict`` they make it a ``validation_failed``."""
    if raw is None:
        return DecodeFailure("invalid_json", "record has no value (tombstone)")
    if len(raw) > max_bytes:
        return DecodeFailure(
            "too_large", f"message is {len(raw)} bytes; the limit is {max_bytes}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return DecodeFailure("invalid_utf8", f"not valid UTF-8 at byte {exc.start}: {exc.reason}")
    try:
        obj: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        # orjson names the problem and where (depth limit, a number beyond a double, a
        # lone surrogate, a BOM...), never the input itself.
        return DecodeFailure("invalid_json", f"not valid JSON: {_printable(exc, 300)}")
    except RecursionError as exc:  # defensive: orjson's own depth limit comes first
        return DecodeFailure("invalid_json", f"not valid JSON: nested too deeply ({exc})")
    if not isinstance(obj, dict):
        return DecodeFailure(
            "not_an_object", f"expected a JSON object, got {type(obj).__name__}"
        )
    model = (_STRICT_MODELS if strict else _MODELS)[kind]
    name = _MODELS[kind].__name__  # the schema's name, strict or not
    try:
        msg = model.model_validate(obj)
    except ValidationError as exc:
        return DecodeFailure("validation_failed", f"{name}: {_describe(exc)}")
    except Exception as exc:  # one poison message must never stop the stream
        # Pathological values (huge numbers, deep nesting) that the validator itself trips on.
        return DecodeFailure("validation_failed", f"{name}: "
                             f"{exc.__class__.__name__}: {_printable(exc, 300)}")
    if on_unknown is not None and not strict:
        unknown = unknown_fields(model, obj)
        if unknown:
            on_unknown(unknown)
    return msg
