"""Bounded field types shared by the wire models.

Identifiers are restricted to a safe alphabet because they end up in logs, metric
labels and (tickers, topics) in Redis keys; free text is bounded by settings instead.
Labels (a head's classes, which come from its training data, e.g. "Energy | Oil") have
the alphabet of :data:`streamer.keys.LABEL_PATTERN`, the names that may reach a key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, StringConstraints

from streamer.keys import LABEL_PATTERN

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@/#+\-]{0,127}$"
TICKER_PATTERN = r"^[A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?$"

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
Ticker = Annotated[
    str, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
    StringConstraints(pattern=TICKER_PATTERN),
]
Label = Annotated[str, StringConstraints(pattern=LABEL_PATTERN)]
# The sentiment head's classes: every scorer has these (the alerting counts "negative"),
# so the wire schema names them (an enum in the exported JSON Schema). Topic labels come
# from the bundle's training data and stay a pattern.
SentimentLabel = Literal["negative", "neutral", "positive"]
SENTIMENT_LABELS: tuple[str, ...] = get_args(SentimentLabel)


def _utc(value: datetime) -> datetime:
    # Naive timestamps are taken as UTC: producers in this domain almost always mean UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-23:59: a ValueError names the field
        raise ValueError("timestamp is out of range once converted to UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
