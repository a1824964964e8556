"""Decode and validation: bad input always becomes a reason, never an exception."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.ingest import DecodeFailure, TickerExtractor, decode, normalize
from streamer.schemas import ChatMessage, NewsItem, Origin

GOOD_CHAT = {"id": "c1", "channel": "desk", "author": "ann", "text": "$AAPL up",
             "sent_at": "2026-01-02T03:04:05Z"}
GOOD_NEWS = {"id": "n1", "source": "wire", "headline": "Exxon cuts output",
             "published_at": "2026-01-02T03:04:05+00:00"}
ORIGIN = Origin(topic="chat", partition=0, offset=1)


def reason(raw: bytes, kind: str = "chat", max_bytes: int = 10_000) -> str:
    out = decode(raw, kind, max_bytes=max_bytes)  # type: ignore[arg-type]
    assert isinstance(out, DecodeFailure), out
    assert out.error  # a readable explanation is always there
    return out.reason


def test_valid_chat_and_news_decode() -> None:
    assert isinstance(decode(orjson.dumps(GOOD_CHAT), "chat", max_bytes=10_000), ChatMessage)
    assert isinstance(decode(orjson.dumps(GOOD_NEWS), "news", max_bytes=10_000), NewsItem)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"id": "x", "text": "unterminated', "invalid_json"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b"[1, 2, 3]", "not_an_object"),
        (orjson.dumps({**GOOD_CHAT, "text": 5}), "validation_failed"),
        (orjson.dumps({k: v for k, v in GOOD_CHAT.items() if k != "sent_at"}),
         "validation_failed"),
        (orjson.dumps({**GOOD_CHAT, "extra": 1}), "validation_failed"),
        (orjson.dumps({**GOOD_CHAT, "id": "bad id with spaces"}), "validation_failed"),
        (b'{"n": ' + b"9" * 400 + b"}", "invalid_json"),
        (b"[" * 5000 + b"]" * 5000, "invalid_json"),
    ],
)
def test_bad_input_gets_a_reason(raw: bytes, expected: str) -> None:
    assert reason(raw) == expected


def test_oversized_message_is_rejected_before_parsing() -> None:
    assert reason(b"x" * 101, max_bytes=100) == "too_large"


def test_tombstone_is_rejected() -> None:
    assert reason(None) == "invalid_json"  # type: ignore[arg-type]


def test_empty_text_after_cleaning_is_rejected() -> None:
    msg = decode(orjson.dumps({**GOOD_CHAT, "text": " \u200b\x07 "}), "chat", max_bytes=10_000)
    assert isinstance(msg, ChatMessage)
    out = normalize(msg, ORIGIN, TickerExtractor.from_csv(), max_chars=100)
    assert isinstance(out, DecodeFailure) and out.reason == "empty_text"


def test_over_long_text_is_rejected() -> None:
    msg = decode(orjson.dumps({**GOOD_CHAT, "text": "a" * 101}), "chat", max_bytes=10_000)
    assert isinstance(msg, ChatMessage)
    out = normalize(msg, ORIGIN, TickerExtractor.from_csv(), max_chars=100)
    assert isinstance(out, DecodeFailure) and out.reason == "text_too_long"


def test_news_text_joins_headline_and_body_and_keeps_given_tickers() -> None:
    msg = decode(orjson.dumps({**GOOD_NEWS, "body": "Output falls.", "tickers": ["cvx"]}),
                 "news", max_bytes=10_000)
    assert isinstance(msg, NewsItem)
    ev = normalize(msg, ORIGIN, TickerExtractor.from_csv(), max_chars=1000)
    assert not isinstance(ev, DecodeFailure)
    assert ev.text == "Exxon cuts output. Output falls."
    assert ev.tickers == ["CVX", "XOM"]


def test_naive_timestamps_are_taken_as_utc() -> None:
    msg = decode(orjson.dumps({**GOOD_CHAT, "sent_at": "2026-01-02T03:04:05"}), "chat",
                 max_bytes=10_000)
    assert isinstance(msg, ChatMessage)
    assert msg.sent_at.utcoffset() is not None and msg.sent_at.utcoffset().total_seconds() == 0


def test_dead_letter_keeps_origin_and_a_bounded_copy() -> None:
    raw = b"\xff" * 100_000
    failure = decode(raw, "chat", max_bytes=1_000_000)
    assert isinstance(failure, DecodeFailure)
    dl = failure.dead_letter(raw, topic="chat", partition=2, offset=9, record_timestamp_ms=5)
    assert (dl.topic, dl.partition, dl.offset) == ("chat", 2, 9)
    assert dl.original_size == 100_000 and dl.original_kept_bytes < dl.original_size


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    out = decode(raw, "chat", max_bytes=1024)
    assert isinstance(out, DecodeFailure | ChatMessage)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                      max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*sorted(GOOD_CHAT), "x"]), json_values))
def test_arbitrary_json_objects_never_raise(obj: dict[str, object]) -> None:
    try:
        raw = orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return
    out = decode(raw, "chat", max_bytes=1 << 20)
    if isinstance(out, ChatMessage):
        ev = normalize(out, ORIGIN, TickerExtractor.from_csv(), max_chars=1000)
        assert ev is not None
