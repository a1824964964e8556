"""Input messages as producers write them to the ``news`` and ``chat`` topics."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from streamer.schemas.types import Identifier, Ticker, UtcDatetime

SCHEMA_VERSION: Literal[1] = 1

# No minimum length: "" is empty text like " ", dead-lettered as ``empty_text`` once
# cleaned (streamer.ingest.normalize), not a validation failure.
_Text = str
_Author = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class WireModel(BaseModel):
    """A record on the wire. Unknown fields are accepted and ignored, as Kafka schema
    evolution expects (a producer may add a field before its consumers know it); the
    worker counts them on input, and ``STREAMER_SCHEMA_STRICT`` refuses them
    (``StrictNewsItem``, ``StrictChatMessage``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class NewsItem(WireModel):
    """A news story: headline, optional body, optional tickers named by the publisher."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: Identifier
    source: Identifier = Field(description="Publisher or feed, e.g. 'reuters'.")
    headline: _Text
    body: str | None = None
    tickers: list[Ticker] | None = Field(None, max_length=64)
    published_at: UtcDatetime


class ChatMessage(WireModel):
    """A chat line from a trader chat, forum or social feed."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: Identifier
    channel: Identifier
    author: _Author
    text: _Text
    sent_at: UtcDatetime


InputMessage = NewsItem | ChatMessage


class StrictNewsItem(NewsItem):
    """``NewsItem`` that refuses unknown fields (``STREAMER_SCHEMA_STRICT``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="NewsItem")


class StrictChatMessage(ChatMessage):
    """``ChatMessage`` that refuses unknown fields (``STREAMER_SCHEMA_STRICT``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="ChatMessage")


def unknown_fields(model: type[BaseModel], obj: dict[str, object]) -> list[str]:
    """The top-level keys of ``obj`` that ``model`` does not know, in their order."""
    return [k for k in obj if k not in model.model_fields]
