"""Decode and validation: bad input always becomes a reason, never an exception."""

from __future__ import annotations

import json
import re
from typing import get_args

import orjson
import pytest
from constant_scorer import score_phase
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.batch.processor import RawRecord
from streamer.ingest import DecodeFailure, TickerExtractor, decode, normalize
from streamer.ingest.normalize import clean_text
from streamer.metrics import Metrics
from streamer.schemas import ChatMessage, Event, NewsItem, Origin
from streamer.schemas.deadletter import Reason
from streamer.schemas.events import Kind
from streamer.settings import InputSettings, Settings

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


def test_a_body_that_opens_with_the_headline_does_not_repeat_it() -> None:
    # Wire copy (and the demo stream) often repeats the headline as the body's first line:
    # the scored text, and so an alert's evidence snippet, must not read "X. X. ...".
    msg = decode(orjson.dumps({**GOOD_NEWS, "body": "EXXON cuts output. Analysts said so."}),
                 "news", max_bytes=10_000)
    assert isinstance(msg, NewsItem)
    ev = normalize(msg, ORIGIN, TickerExtractor.from_csv(), max_chars=1000)
    assert not isinstance(ev, DecodeFailure)
    assert ev.text == "EXXON cuts output. Analysts said so."


def test_a_headline_ending_its_sentence_gets_no_second_full_stop() -> None:
    msg = decode(orjson.dumps({**GOOD_NEWS, "headline": "Exxon cuts output!",
                               "body": "Output falls."}), "news", max_bytes=10_000)
    assert isinstance(msg, NewsItem)
    ev = normalize(msg, ORIGIN, TickerExtractor.from_csv(), max_chars=1000)
    assert not isinstance(ev, DecodeFailure)
    assert ev.text == "Exxon cuts output! Output falls."


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


# --- broader fuzz: every hostile input is an event or a dead letter with a known reason ---
# The worker's own limits (Settings defaults), not the small ones above.
MAX_BYTES = InputSettings.model_fields["max_message_bytes"].default
MAX_CHARS = InputSettings.model_fields["max_text_chars"].default
REASONS = set(get_args(Reason))
EXTRACTOR = TickerExtractor.from_csv()
GOOD = {"chat": GOOD_CHAT, "news": GOOD_NEWS}


def outcome(raw: bytes | None, kind: Kind, *, max_bytes: int = MAX_BYTES,
            max_chars: int = MAX_CHARS) -> Event | DecodeFailure:
    """What the ingest stage makes of ``raw``; fails the test on anything but the contract."""
    msg = decode(raw, kind, max_bytes=max_bytes)  # never raises
    out = msg if isinstance(msg, DecodeFailure) else normalize(msg, ORIGIN, EXTRACTOR,
                                                               max_chars=max_chars)
    if isinstance(out, DecodeFailure):
        assert out.reason in REASONS, out
        assert out.error.strip(), out
        # Readable and safe to log: bounded, no control characters from the input.
        assert len(out.error) < 4096, len(out.error)
        assert all(c.isprintable() for c in out.error), repr(out.error)
    else:
        assert isinstance(out, Event) and out.text and len(out.text) <= max_chars
    return out


def nested(depth: int, opener: str) -> str:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return opener * depth + "1" + closer * depth


def with_raw(kind: Kind, field: str, value: str) -> bytes:
    """The good message with ``field`` set to the JSON text ``value``, as written."""
    body = ",".join(orjson.dumps(k).decode() + ":" + orjson.dumps(v).decode()
                    for k, v in GOOD[kind].items() if k != field)
    return ("{" + body + "," + orjson.dumps(field).decode() + ":" + value + "}").encode()


HUGE_NUMBERS = ["1e400", "-1e400", "1e-400", "9" * 5000, "-" + "9" * 5000, "10" + "0" * 400,
                "1" + "0" * 20, "-0", "0.0000000000000000000000001", "123456789.123456789e300",
                "18446744073709551616", "-9223372036854775809"]
kinds = st.sampled_from(["chat", "news"])
field_names = st.sampled_from(sorted({*GOOD_CHAT, *GOOD_NEWS, "body", "tickers",
                                      "schema_version"}))
hostile_text = st.lists(
    st.characters(codec="utf-8") | st.sampled_from(
        ["\x00", "\x07", "\x1b[2J", "\u202e", "\u200b", "\ufeff", "\u2028", "\r\n", "\t"]),
    max_size=100,
).map("".join)


@st.composite
def deep_json(draw: st.DrawFn) -> tuple[Kind, bytes]:
    kind = draw(kinds)
    text = nested(draw(st.integers(1, 20_000)), draw(st.sampled_from(["[", '{"a":'])))
    if draw(st.booleans()):
        return kind, text.encode()  # the whole message
    return kind, with_raw(kind, draw(field_names), text)  # one field's value


@st.composite
def huge_numbers(draw: st.DrawFn) -> tuple[Kind, bytes]:
    kind = draw(kinds)
    return kind, with_raw(kind, draw(field_names), draw(st.sampled_from(HUGE_NUMBERS)))


@st.composite
def wrong_types(draw: st.DrawFn) -> tuple[Kind, bytes]:
    kind = draw(kinds)
    value = draw(json_values)
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        text = str(value)
    return kind, with_raw(kind, draw(field_names), text)


@st.composite
def control_chars(draw: st.DrawFn) -> tuple[Kind, bytes]:
    kind = draw(kinds)
    field = draw(field_names)
    return kind, orjson.dumps({**GOOD[kind], field: draw(hostile_text)})


@st.composite
def mixed_encodings(draw: st.DrawFn) -> tuple[Kind, bytes]:
    kind = draw(kinds)
    text = draw(st.text(max_size=40)) + draw(st.sampled_from(["café", "€", "日本", "ß", "😀"]))
    field = "text" if kind == "chat" else "headline"
    doc = json.dumps({**GOOD[kind], field: text}, ensure_ascii=False)
    how = draw(st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be",
                                "utf-32", "bom", "surrogate", "mixed"]))
    if how in ("latin-1", "cp1252"):
        return kind, doc.encode(how, errors="replace")
    if how.startswith("utf-"):
        return kind, doc.encode(how)
    if how == "bom":
        bom = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]))
        return kind, bom + doc.encode()
    if how == "surrogate":  # lone or reversed surrogates, escaped as JSON allows
        esc = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udc00\\ud800", "\\ud800x",
                                    "\\ud83d\\ude00"]))
        return kind, with_raw(kind, field, '"a' + esc + 'b"')
    # UTF-8 with a latin-1 encoded piece in the middle.
    return kind, doc.encode()[:-2] + text.encode("latin-1", errors="replace") + b'"}'


@st.composite
def unknown_fields(draw: st.DrawFn) -> tuple[Kind, bytes]:
    kind = draw(kinds)
    extra = draw(st.dictionaries(st.text(max_size=300).filter(lambda k: k not in GOOD[kind]),
                                 json_values, min_size=1, max_size=4))
    try:
        return kind, orjson.dumps({**GOOD[kind], **extra})
    except orjson.JSONEncodeError:
        return kind, orjson.dumps({**GOOD[kind], "unknown": None})


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Kind, bytes]:
    """A good message with a few bytes overwritten, cut out or spliced in."""
    kind = draw(kinds)
    raw = bytearray(orjson.dumps(GOOD[kind]))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(raw)))
        cut = draw(st.integers(0, 3))
        raw[i:i + cut] = draw(st.binary(max_size=4))
    return kind, bytes(raw)


hostile = st.one_of(deep_json(), huge_numbers(), wrong_types(), control_chars(),
                    mixed_encodings(), unknown_fields(), mutated(),
                    kinds.map(lambda k: (k, orjson.dumps(GOOD[k]))))


@settings(max_examples=300, deadline=None)
@given(hostile)
def test_hostile_input_is_an_event_or_a_known_dead_letter(case: tuple[Kind, bytes]) -> None:
    outcome(case[1], case[0])


@settings(max_examples=100, deadline=None)
@given(st.lists(hostile, max_size=20))
def test_a_batch_accounts_for_every_input(batch: list[tuple[Kind, bytes]]) -> None:
    outs = [outcome(raw, kind) for kind, raw in batch]
    valid = sum(isinstance(o, Event) for o in outs)
    dead = sum(isinstance(o, DecodeFailure) for o in outs)
    assert valid + dead == len(batch)


@settings(max_examples=200, deadline=None)
@given(kinds, st.integers(1_100, 50_000), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_is_invalid_json_not_an_exception(kind: Kind, depth: int,
                                                       opener: str) -> None:
    out = outcome(nested(depth, opener).encode(), kind, max_bytes=1 << 20)
    assert isinstance(out, DecodeFailure) and out.reason == "invalid_json"
    assert "depth" in out.error or "deep" in out.error


@pytest.mark.parametrize("number", ["1e400", "-1e400", "9" * 5000, "-" + "9" * 5000])
@pytest.mark.parametrize("field", ["id", "text", "sent_at", "schema_version"])
def test_huge_numbers_are_dead_letters(number: str, field: str) -> None:
    out = outcome(with_raw("chat", field, number), "chat")
    assert isinstance(out, DecodeFailure)
    assert out.reason in ("invalid_json", "validation_failed")


@pytest.mark.parametrize("kind", ["chat", "news"])
def test_every_field_with_a_wrong_type_is_named(kind: Kind) -> None:
    for field in GOOD[kind]:
        for value in ("[]", "{}", "true", "null", "3.5", "[[[[1]]]]", '{"$gt": ""}'):
            if field.endswith("_at") and value == "3.5":
                continue  # a number is a time: Unix seconds (pydantic's datetime rules)
            out = outcome(with_raw(kind, field, value), kind)
            assert isinstance(out, DecodeFailure), (field, value)
            assert out.reason == "validation_failed" and field in out.error, (field, value, out)


@pytest.mark.parametrize(("text", "expected"), [
    ("lone \\ud800 surrogate", "invalid_json"),
    ("reversed \\udc00\\ud800", "invalid_json"),
    ("paired \\ud83d\\ude00 is fine", None),
    ("NUL \\u0000 and ESC \\u001b[2J are dropped", None),
    ("\\u0000\\u0007\\u200b\\ufeff", "empty_text"),
])
def test_escaped_surrogates_and_controls(text: str, expected: str | None) -> None:
    out = outcome(with_raw("chat", "text", f'"{text}"'), "chat")
    if expected is None:
        assert isinstance(out, Event)
        assert all(c.isprintable() for c in out.text), repr(out.text)
    else:
        assert isinstance(out, DecodeFailure) and out.reason == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (b"\xef\xbb\xbf" + orjson.dumps(GOOD_CHAT), "invalid_json"),  # UTF-8 BOM
    (json.dumps(GOOD_CHAT).encode("utf-16"), "invalid_utf8"),
    (json.dumps({**GOOD_CHAT, "text": "café"}, ensure_ascii=False).encode("latin-1"),
     "invalid_utf8"),
])
def test_other_encodings_are_dead_letters(raw: bytes, expected: str) -> None:
    out = outcome(raw, "chat")
    assert isinstance(out, DecodeFailure) and out.reason == expected


@pytest.mark.parametrize("kind", ["chat", "news"])
def test_a_megabyte_of_text_is_refused_with_a_reason(kind: Kind) -> None:
    field = "text" if kind == "chat" else "headline"
    raw = orjson.dumps({**GOOD[kind], field: "word " * 200_000})
    out = outcome(raw, kind)  # the worker's limits: too large before parsing
    assert isinstance(out, DecodeFailure) and out.reason == "too_large"
    out = outcome(raw, kind, max_bytes=4 << 20)  # a raised byte limit: the text limit holds
    assert isinstance(out, DecodeFailure) and out.reason == "text_too_long"
    assert str(MAX_CHARS) in out.error


@pytest.mark.parametrize(("kind", "good"), [("chat", GOOD_CHAT), ("news", GOOD_NEWS)])
def test_unknown_fields_are_ignored_and_reported(kind: Kind, good: dict[str, str]) -> None:
    seen: list[list[str]] = []
    raw = orjson.dumps({"region": "EMEA", **good, "priority": 2})
    out = decode(raw, kind, max_bytes=10_000, on_unknown=seen.append)
    assert isinstance(out, (ChatMessage, NewsItem)) and out.id == good["id"]
    assert seen == [["region", "priority"]]


def test_a_message_without_unknown_fields_reports_none() -> None:
    seen: list[list[str]] = []
    decode(orjson.dumps(GOOD_CHAT), "chat", max_bytes=10_000, on_unknown=seen.append)
    assert seen == []


def test_strict_mode_dead_letters_unknown_fields_naming_them() -> None:
    out = decode(orjson.dumps({**GOOD_CHAT, "extra": 1}), "chat", max_bytes=10_000,
                 strict=True)
    assert isinstance(out, DecodeFailure) and out.reason == "validation_failed"
    assert out.error.startswith("ChatMessage: extra: Extra inputs are not permitted")


def test_strict_mode_is_the_schema_strict_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).input.schema_strict is False
    monkeypatch.setenv("STREAMER_SCHEMA_STRICT", "true")
    assert Settings(_env_file=None).input.schema_strict is True


def test_unknown_field_names_cannot_smuggle_escapes_into_the_error() -> None:
    raw = orjson.dumps({**GOOD_CHAT, "\x1b[2J\u202e" + "k" * 100_000: 1})
    out = decode(raw, "chat", max_bytes=1 << 20, strict=True)
    assert isinstance(out, DecodeFailure) and out.reason == "validation_failed"
    assert "\x1b" not in out.error and "Extra inputs are not permitted" in out.error
    assert len(out.error) < 500


def test_out_of_range_timestamps_name_the_field() -> None:
    out = outcome(with_raw("chat", "sent_at", '"9999-12-31T23:59:59-23:59"'), "chat")
    assert isinstance(out, DecodeFailure) and out.reason == "validation_failed"
    assert "sent_at" in out.error


# --- one cleaning rule: every control (Cc), format (Cf), surrogate (Cs), private-use (Co)
# character and noncharacter is removed; tab, newline and other whitespace become a space.
@pytest.mark.parametrize(("what", "char"), [
    ("C0 control (NUL)", "\x00"), ("C0 control (ESC)", "\x1b"), ("DEL", "\x7f"),
    ("C1 control", "\x9b"), ("soft hyphen", "\u00ad"), ("Arabic letter mark", "\u061c"),
    ("zero-width space", "\u200b"), ("zero-width joiner", "\u200d"), ("LRM", "\u200e"),
    ("bidi embedding", "\u202a"), ("bidi override", "\u202e"), ("word joiner", "\u2060"),
    ("bidi isolate LRI", "\u2066"), ("bidi isolate RLI", "\u2067"),
    ("bidi isolate FSI", "\u2068"), ("bidi isolate PDI", "\u2069"), ("BOM", "\ufeff"),
    ("interlinear annotation", "\ufff9"), ("tag character", "\U000e0041"),
    ("language tag", "\U000e0001"), ("cancel tag", "\U000e007f"),
    ("noncharacter U+FFFE", "\ufffe"), ("noncharacter U+FFFF", "\uffff"),
    ("noncharacter U+FDD0", "\ufdd0"), ("noncharacter U+10FFFF", "\U0010ffff"),
    ("private use", "\ue000"), ("supplementary private use", "\U000f0000"),
])
def test_each_control_and_format_class_is_removed(what: str, char: str) -> None:
    assert clean_text(f"ab{char}cd {char}") == "abcd", what


def test_tab_and_newline_still_collapse_to_one_space() -> None:
    assert clean_text("a\tb\n\nc\r\n d\u2028e") == "a b c d e"


def test_cleaning_leaves_nfc_text_even_after_removing_a_character() -> None:
    # A removed character between a letter and its combining accent must not leave
    # the decomposed pair behind.
    assert clean_text("cafe\u200b\u0301") == "caf\u00e9"


@pytest.mark.parametrize("text", ["\ufffe", "\ufffe\uffff", "\u00ad\u00ad", "\u00ad\u200d\u2060",
                                  "\u2066\u2069", "\U000e0001\U000e0041\U000e007f",
                                  "\ue000", " \u200b\t\u00ad\n "])
@pytest.mark.parametrize("kind", ["chat", "news"])
def test_text_of_only_format_characters_is_empty_text(text: str, kind: Kind) -> None:
    field = "text" if kind == "chat" else "headline"
    out = outcome(orjson.dumps({**GOOD[kind], field: text}), kind)
    assert isinstance(out, DecodeFailure) and out.reason == "empty_text", out


@pytest.mark.parametrize(("kind", "extra"), [("chat", {}), ("news", {}),
                                             ("news", {"body": "Output falls."})])
def test_empty_and_blank_main_text_give_the_same_reason(kind: Kind,
                                                        extra: dict[str, str]) -> None:
    field = "text" if kind == "chat" else "headline"
    reasons = set()
    for text in ["", " ", "\u200b"]:
        out = outcome(orjson.dumps({**GOOD[kind], **extra, field: text}), kind)
        assert isinstance(out, DecodeFailure), (text, out)
        reasons.add(out.reason)
    assert reasons == {"empty_text"}


HIDDEN = re.compile("[\u2066-\u2069\u202a-\u202e\U000e0000-\U000e007f]")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=8) | st.sampled_from(
    ["\u2066", "\u2067", "\u2068", "\u2069", "\u202e", "\U000e0001", "\U000e0041",
     "\U000e007f", "$AAPL", " "]), min_size=1, max_size=30).map("".join))
def test_bidi_isolates_and_tag_characters_never_reach_the_event_text(text: str) -> None:
    out = outcome(orjson.dumps({**GOOD_NEWS, "headline": f"Exxon {text}", "body": text}),
                  "news")
    assert isinstance(out, Event)
    assert not HIDDEN.search(out.text), repr(out.text)


def test_bidi_isolates_and_tag_characters_never_reach_the_scored_snippet() -> None:
    cfg = Settings()
    hidden = "".join(["\u2066", "\u2067", "\u2068", "\u2069", "\u202e", "\U000e0001",
                      "\U000e0041", "\U000e007f"])
    raw = orjson.dumps({**GOOD_NEWS, "headline": f"Exxon {hidden}cuts{hidden} output"})
    out = score_phase(cfg, [RawRecord(cfg.topics.news, 0, 1, raw)], Metrics())
    assert [ev.snippet for ev in out.scored] == ["Exxon cuts output"]
