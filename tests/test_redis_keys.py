"""Text never reaches a Redis key: every data-derived key part is a bounded identifier.

Hostile strings (glob characters, hash-tag braces, separators, newlines, format
directives, megabytes, Unicode look-alikes) go everywhere a key part comes from
input; each is either refused or ends up inside the key alphabet and length. Label
names with spaces and punctuation ("Energy | Oil", "M&A | Investments") are allowed:
they enter keys percent-encoded and come back exactly.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.crc import key_slot

from streamer.aggregate.delta import build_deltas
from streamer.alert.store import AlertStore
from streamer.ingest import DecodeFailure, TickerExtractor, decode, normalize
from streamer.keys import (
    LABEL_PATTERN,
    Keyspace,
    alert_id_part,
    decode_name,
    encode_name,
    episode_id,
    field,
    parse_field,
    parse_scope_field,
    safe_name,
    scope_field,
)
from streamer.schemas import Origin, Prediction, ScoredEvent
from streamer.schemas.events import Stamps
from streamer.settings import InputSettings, Settings

SAFE = re.compile(r"[A-Za-z0-9._\-]{1,64}")
SAFE_TOPIC = re.compile(r"[A-Za-z0-9._\-]{1,249}")
TICKER = re.compile(r"[A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?")
# Written out here rather than imported: the tests check keys.py against this spelling.
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._\-|&/()'+]{0,62}[A-Za-z0-9._\-|&/()'+])?")
ENCODED = r"(?:[A-Za-z0-9._\-]|%[0-9A-F]{2}){1,64}"  # a name inside a key or field
FIELD = re.compile(rf"(all|topic|ticker|market|stream)\|{ENCODED}\|[np]\|{ENCODED}")
ALERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:%\-]{0,254}")
# Nothing that separates fields or keys, makes a hash tag, globs, or breaks a line.
NEVER_IN_A_KEY = set("|{}*?[]\\: \t\r\n\x00")
BUCKET_KEY = re.compile(r"st:\{[A-Za-z0-9._\-]{1,249}:[0-9]{1,10}\}:(wm|counts|b:-?[0-9]{1,12})")
EXTRACTOR = TickerExtractor.from_csv()
ORIGIN = Origin(topic="news", partition=0, offset=1)

NASTY = ["*", "?", "[a-z]", "{", "}", "{x}", ":", "|", " ", "\n", "\r\n", "\t", "\x00", "%s",
         "%(x)s", "{0}", "{0.__class__}", "$(rm -rf /)", "`id`", "'; FLUSHALL; '", "\\",
         "a" * 100_000, "\u202e", "\u200b", "\ufeff", "\u2028", "\u00df", "\ufb00", "\u212a",
         "\uff21\uff21\uff30\uff2c", "\ud800", "😀",
         "AAPL\n", "\nAAPL", "AAPL ", "XOM}{", "XOM*", "XOM:1", "BRK.B\n",
         "Energy | Oil\n", " Energy | Oil", "Energy | Oil ", "Energy|{x}", "M&A | *",
         "a%7Cb", "%7C", "%", "Fed\u00a0| Central Banks", "Energy \uff5c Oil", "a" * 65]
# Names a head may carry: allowed, and hard for an encoding (bars, spaces, '&', '%'-like).
GOOD = ["Energy | Oil", "Fed | Central Banks", "M&A | Investments", "Gold | Metals | Materials",
        "General News | Opinion", "Treasuries | Corporate Debt", "IPO", "energy-oil", "BRK.B",
        "Women's Health (US) / R+D", "a", "9", "A" * 64, "x|", "all"]
nasty = st.sampled_from(NASTY)
labels = st.one_of(st.sampled_from(GOOD), st.from_regex(LABEL_PATTERN, fullmatch=True))
hostile = st.one_of(
    nasty,
    st.text(max_size=80),
    st.tuples(st.sampled_from(["AAPL", "XOM", "Energy | Oil", "news", "BRK.B"]), nasty,
              st.booleans()).map(lambda t: t[1] + t[0] if t[2] else t[0] + t[1]),
)


def refused_or_safe(make: object, *args: object) -> str | None:
    """``make(*args)``: the key it builds, or None when it refused with ValueError."""
    try:
        return make(*args)  # type: ignore[operator, no-any-return]
    except ValueError:
        return None


def safe_key(key: str) -> None:
    """Inside the key alphabet, and nothing that could forge a field, tag or pattern."""
    assert not NEVER_IN_A_KEY & set(key), key
    assert key.isascii() and key.isprintable(), key


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostile, labels), st.one_of(hostile, labels))
def test_field_names_hold_only_safe_parts(key: str, label: str) -> None:
    out = refused_or_safe(field, "topic", key, "n", label)
    if out is not None:
        assert FIELD.fullmatch(out), out
        assert len(out.split("|")) == 4  # nothing forged a separator
        assert parse_field(out) == ("topic", key, "n", label)
    assert (out is not None) == bool(LABEL.fullmatch(key) and LABEL.fullmatch(label))


@settings(max_examples=500, deadline=None)
@given(labels)
def test_every_allowed_label_round_trips_through_the_key_encoding(name: str) -> None:
    part = encode_name(name)
    assert re.fullmatch(ENCODED, part) and decode_name(part) == name
    for part_of_a_key in (part, field("topic", name, "p", name), scope_field("topic", name)):
        safe_key(part_of_a_key.replace("|", ""))  # the separators are the builders' own
    assert parse_scope_field(scope_field("topic", name)) == ("topic", name)
    # Tickers and slug labels are their own encoding: old keys still read.
    assert (part == name) == (re.fullmatch(r"[A-Za-z0-9._\-]+", name) is not None)


@settings(max_examples=300, deadline=None)
@given(labels, labels)
def test_distinct_labels_never_share_a_key(one: str, two: str) -> None:
    assume(one != two)
    assert encode_name(one) != encode_name(two)
    assert field("topic", one, "n", "negative") != field("topic", two, "n", "negative")
    assert episode_id("topic", one, 0) != episode_id("topic", two, 0)


@settings(max_examples=300, deadline=None)
@given(st.one_of(hostile, labels,
                 st.from_regex(r"(?:[A-Za-z0-9._\-|]|%[0-9A-Fa-f]{2}){1,20}", fullmatch=True)))
def test_only_what_the_encoding_writes_is_read_back(part: str) -> None:
    """A field in Redis decodes only when encode_name could have written it, so a name
    read back is as safe as one written (and one name has exactly one spelling)."""
    name = refused_or_safe(decode_name, part)
    if name is not None:
        assert LABEL.fullmatch(name) and encode_name(name) == part


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["topic", "ticker", "market", "stream"]), st.one_of(hostile, labels))
def test_names_keep_evidence_and_claim_keys_in_their_slot(scope: str, name: str) -> None:
    """A name moves no key to another Cluster slot: evidence keys hash on their own scope
    key's tag, claim keys on {alerts}; alert ids stay safe identifiers."""
    keys = Keyspace()
    evidence = refused_or_safe(keys.evidence, scope, name)
    assert (evidence is None) == (LABEL.fullmatch(name) is None)
    if evidence is None:
        return
    tag = f"{scope}|{encode_name(name)}"
    assert evidence == f"st:ev:{{{tag}}}" and key_slot(evidence.encode()) == key_slot(tag.encode())
    alert_id = f"{episode_id(scope, name, 1_767_344_400)}:escalated-critical"
    assert ALERT_ID.fullmatch(alert_id) and alert_id_part(alert_id) == alert_id
    claim = keys.claim(alert_id)
    assert key_slot(claim.encode()) == key_slot(b"alerts")
    safe_key(claim.removeprefix("st:{alerts}:claim:").replace(":", ""))


@settings(max_examples=300, deadline=None)
@given(hostile, st.integers(-5, 10**11) | st.sampled_from([True, 1.5]))
def test_partition_keys_hold_only_safe_parts(topic: str, partition: int) -> None:
    keys = Keyspace()
    tag = refused_or_safe(Keyspace.tag, topic, partition)
    if tag is None:
        return
    assert SAFE_TOPIC.fullmatch(topic) and not isinstance(partition, bool)
    for key in (keys.watermark(tag), keys.counts(tag), keys.bucket(tag, 1_767_344_400)):
        assert BUCKET_KEY.fullmatch(key), key
        assert key.count("{") == 1 and key.count("}") == 1  # one hash tag: one Cluster slot


@settings(max_examples=200, deadline=None)
@given(hostile)
def test_tags_read_back_and_prefixes_are_checked_again(value: str) -> None:
    keys = Keyspace()
    out = refused_or_safe(keys.bucket, value, 0)
    assert out is None or BUCKET_KEY.fullmatch(out), out
    prefix = refused_or_safe(Keyspace, value)
    assert (prefix is not None) == bool(SAFE.fullmatch(value))


def test_bucket_starts_must_be_whole_seconds() -> None:
    tag = Keyspace.tag("news", 3)
    with pytest.raises(ValueError):
        Keyspace().bucket(tag, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Keyspace().bucket(tag, "1*")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["topic", "ticker", "market", "stream", "all", "x", "topic|"]),
       st.one_of(hostile, labels))
def test_scope_fields_and_evidence_keys_hold_only_safe_parts(scope: str, key: str) -> None:
    out = refused_or_safe(scope_field, scope, key)
    if out is not None:
        assert out == f"{scope}|{encode_name(key)}" and LABEL.fullmatch(key)
        assert parse_scope_field(out) == (scope, key)
    assert (out is None) == (scope not in ("topic", "ticker", "market", "stream", "all")
                             or not LABEL.fullmatch(key))


@settings(max_examples=200, deadline=None)
@given(hostile)
def test_latency_keys_take_only_safe_worker_ids_and_host_names_are_made_safe(name: str) -> None:
    key = refused_or_safe(Keyspace().latency, name)
    if key is not None:
        assert key == f"st:latency:{name}" and SAFE.fullmatch(name)
    host = safe_name(name, fallback="host")
    assert SAFE.fullmatch(host) and len(host) <= 48
    assert Keyspace().latency(f"{host}-123").endswith(f":{host}-123")


@settings(max_examples=200, deadline=None)
@given(hostile)
def test_claim_keys_take_only_well_formed_alert_ids(alert_id: str) -> None:
    store = AlertStore(Redis(), "st", claim_ttl_s=60)  # no connection is made
    key = refused_or_safe(store.claim_key, alert_id)
    if key is not None:
        assert key == f"st:{{alerts}}:claim:{alert_id}" and ALERT_ID.fullmatch(alert_id), key
    assert (key is None) == (refused_or_safe(alert_id_part, alert_id) is None)


@settings(max_examples=300, deadline=None)
@given(st.lists(hostile, max_size=5), hostile)
def test_input_tickers_reach_keys_only_as_bounded_symbols(given_tickers: list[str],
                                                          text: str) -> None:
    """From the wire (publisher tickers, $cashtags and Reuters tags in text; the markets it
    names) to the Redis fields."""
    raw = orjson.dumps({"id": "n1", "source": "wire", "headline": f"{text} ${text} <{text}> up",
                        "tickers": given_tickers, "published_at": "2026-01-02T03:04:05Z"}
                       ) if _encodable(text, given_tickers) else b""
    msg = decode(raw, "news", max_bytes=1 << 20)
    if isinstance(msg, DecodeFailure):
        return
    ev = normalize(msg, ORIGIN, EXTRACTOR, max_chars=InputSettings.model_fields[
        "max_text_chars"].default)
    if isinstance(ev, DecodeFailure):
        return
    assert all(TICKER.fullmatch(t) for t in ev.tickers), ev.tickers
    scored = ScoredEvent(
        id=ev.id, kind=ev.kind, source=ev.source, snippet=ev.text[:280], tickers=ev.tickers,
        markets=ev.markets, event_time=ev.event_time, origin=ev.origin, stamps=ev.stamps,
        scorer="test",
        sentiment=Prediction(label="negative", probs={"negative": 0.9, "positive": 0.1}),
        topic=Prediction(label="Energy | Oil", probs={"Energy | Oil": 1.0}),
    )
    delta = build_deltas([scored], [], 10)[("news", 0)]
    for fields in [*delta.counts.values(), *delta.sums.values()]:
        assert all(FIELD.fullmatch(name) for name in fields), list(fields)


def _encodable(text: str, tickers: list[str]) -> bool:
    try:
        orjson.dumps([text, *tickers])
    except orjson.JSONEncodeError:  # lone surrogates: orjson refuses them
        return False
    return True


@given(st.one_of(hostile, labels))
@settings(max_examples=200, deadline=None)
def test_hostile_labels_cannot_enter_a_scored_event(label: str) -> None:
    """Topic and sentiment labels come from the model manifest; the wire model checks them
    with the same alphabet as the keys (so every label it accepts has a key)."""
    try:
        pred = Prediction(label=label, probs={label: 1.0})
    except ValidationError:
        assert not LABEL.fullmatch(label)
        return
    assert LABEL.fullmatch(pred.label)
    assert decode_name(encode_name(pred.label)) == label


def test_settings_refuse_unsafe_prefixes_and_worker_ids() -> None:
    for bad in ["st{x}", "st*", "st\n", "", "a:b", "a" * 100]:
        with pytest.raises(ValidationError):
            Settings(redis_key_prefix=bad)
    for bad in ["w*", "w?", "w\n", "w x", "{w}"]:
        with pytest.raises(ValidationError):
            Settings(worker_id=bad)
    assert Settings(worker_id="demo-1a2b3c", redis_key_prefix="t1234abcd").worker.id


def test_kafka_record_topics_are_checked_before_they_name_a_key() -> None:
    """``Origin.topic`` comes from Kafka, not the payload; still checked on the way in."""
    ev = ScoredEvent(
        id="e1", kind="news", source="wire", snippet="x", tickers=[], scorer="t",
        event_time=datetime(2026, 1, 2, tzinfo=UTC),
        origin=Origin(topic="news}{x", partition=0, offset=1),
        stamps=Stamps(),
        sentiment=Prediction(label="neutral", probs={"neutral": 1.0}),
        topic=Prediction(label="other", probs={"other": 1.0}),
    )
    delta = build_deltas([ev], [], 10)[("news}{x", 0)]
    with pytest.raises(ValueError):
        Keyspace.tag(delta.topic, delta.partition)
