"""Turn a validated input into the internal event: clean text, one time field, tickers,
markets."""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Callable

from streamer.ingest.decode import DecodeFailure
from streamer.ingest.markets import MarketExtractor
from streamer.ingest.tickers import OnDrop, TickerExtractor
from streamer.schemas import ChatMessage, Event, InputMessage, NewsItem, Origin
from streamer.schemas.events import Kind

# One rule: every control (Cc), format (Cf: soft hyphen, zero-width and bidi controls,
# isolates, tag characters...), surrogate (Cs) and private-use (Co) character and every
# noncharacter (U+FDD0-FDEF, U+xFFFE/U+xFFFF) is removed. They carry no meaning the models
# can use, can hide or reorder text (bidi, tags) and smuggle terminal escapes into logs and
# dashboards; private-use characters have no agreed meaning and surrogates cannot be
# written as UTF-8. Whitespace controls (tab, newline...) are kept and collapsed to one
# space below. Unassigned code points are kept: which ones are unassigned depends on the
# Python's Unicode version, and newer emoji must not vanish on an older interpreter.
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})


def _is_removed(cp: int) -> bool:
    c = chr(cp)
    if 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE:  # the 66 noncharacters
        return True
    return unicodedata.category(c) in _REMOVED_CATEGORIES and not c.isspace()


def _char_class(pred: Callable[[int], bool]) -> str:
    """A regex character class of the code points where ``pred`` holds, as ranges."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if pred(cp):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + "]"


@functools.cache
def _removed() -> re.Pattern[str]:
    """Built once, on first use, from the interpreter's Unicode database (a noticeable
    pause: docs/BENCHMARKS.md)."""
    return re.compile(_char_class(_is_removed))


_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """The text the models see: removed characters gone, NFC, whitespace runs one space."""
    # Removal first: a character removed between a letter and its accent would otherwise
    # leave a decomposed pair that NFC had not composed.
    text = unicodedata.normalize("NFC", _removed().sub("", text))
    return _SPACES.sub(" ", text).strip()


def news_text(headline: str, body: str | None) -> str:
    """The text scored for a news item: headline, then the body when there is one.

    A body that opens with the headline (wire copy often repeats it as its first line) is
    the text on its own: the snippet an alert shows must not read "X. X. ...". A headline
    that ends its own sentence ("Oil slumps!") is not given a second full stop."""
    if not body:
        return headline
    if _words(body).startswith(_words(headline)):
        return body
    return f"{headline} {body}" if headline.endswith((".", "!", "?", ":", ";")) \
        else f"{headline}. {body}"


def _words(text: str) -> str:
    """Letters and digits, case folded, one space between words: a headline compared with
    the start of its body whatever the case, punctuation and spacing."""
    return " ".join("".join(ch for ch in word if ch.isalnum())
                    for word in text.casefold().split()).strip() + " "


@functools.cache
def builtin_markets() -> MarketExtractor:
    """The built-in market list, read once (a worker or test that names no list)."""
    return MarketExtractor.from_csv()


def normalize(
    msg: InputMessage, origin: Origin, tickers: TickerExtractor, *, max_chars: int,
    on_dropped_ticker: OnDrop | None = None, markets: MarketExtractor | None = None,
) -> Event | DecodeFailure:
    """The event for ``msg``, or why not; ``on_dropped_ticker`` hears of each publisher
    ticker left out (see :meth:`TickerExtractor.extract`); ``markets``: the market list
    (default: the built-in one)."""
    given: list[str] = []
    if isinstance(msg, NewsItem):
        # An empty headline is empty text, whatever the body says: one reason for "",
        # " " and only-format-characters alike.
        headline = clean_text(msg.headline)
        body = clean_text(msg.body or "")
        text = news_text(headline, body) if headline else ""
        given = msg.tickers or []
        kind: Kind = "news"
        source, when = msg.source, msg.published_at
    else:
        assert isinstance(msg, ChatMessage)
        # A chat line is short and about one thing: its markets are read as a headline's.
        headline, body = clean_text(msg.text), ""
        text = headline
        kind = "chat"
        source, when = msg.channel, msg.sent_at
    if not text:
        return DecodeFailure("empty_text", "text is empty after removing whitespace, "
                             "control and format characters")
    if len(text) > max_chars:
        return DecodeFailure(
            "text_too_long", f"text has {len(text)} characters; the limit is {max_chars}"
        )
    return Event(
        id=msg.id,
        kind=kind,
        source=source,
        text=text,
        # After the checks: a dead-lettered message drops no tickers.
        tickers=tickers.extract(text, given=given, on_drop=on_dropped_ticker,
                                reuters_tags=kind == "news"),
        markets=(markets if markets is not None else builtin_markets()).extract(headline, body),
        event_time=when,
        origin=origin,
    )
