"""Turn a validated input into the internal event: clean text, one time field, tickers."""

from __future__ import annotations

import re
import unicodedata

from streamer.ingest.decode import DecodeFailure
from streamer.ingest.tickers import TickerExtractor
from streamer.schemas import ChatMessage, Event, InputMessage, NewsItem, Origin
from streamer.schemas.events import Kind

# Control and format characters (except tab/newline) are dropped: they carry no
# meaning for the models and can smuggle terminal escapes into logs and dashboards.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def news_text(headline: str, body: str | None) -> str:
    """The text scored for a news item: headline, then the body when there is one."""
    return f"{headline}. {body}" if body else headline


def normalize(
    msg: InputMessage, origin: Origin, tickers: TickerExtractor, *, max_chars: int
) -> Event | DecodeFailure:
    if isinstance(msg, NewsItem):
        headline = clean_text(msg.headline)
        body = clean_text(msg.body or "")
        text = news_text(headline, body)
        found = tickers.extract(text, given=msg.tickers or ())
        kind: Kind = "news"
        source, when = msg.source, msg.published_at
    else:
        assert isinstance(msg, ChatMessage)
        text = clean_text(msg.text)
        found = tickers.extract(text)
        kind = "chat"
        source, when = msg.channel, msg.sent_at
    if not text:
        return DecodeFailure("empty_text", "text is empty after removing whitespace and controls")
    if len(text) > max_chars:
        return DecodeFailure(
            "text_too_long", f"text has {len(text)} characters; the limit is {max_chars}"
        )
    return Event(
        id=msg.id,
        kind=kind,
        source=source,
        text=text,
        tickers=found,
        event_time=when,
        origin=origin,
    )
