"""Text never reaches a Redis key: every data-derived key part is a bounded identifier.

Hostile strings (glob characters, hash-tag braces, separators, newlines, format
directives, megabytes, Unicode look-alikes) go everywhere a key part comes from
input; each is either refused or ends up inside the key alphabet and length.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from redis.asyncio import Redis

from streamer.aggregate.delta import build_deltas
from streamer.alert.store import AlertStore
from streamer.ingest import DecodeFailure, TickerExtractor, decode, normalize
from streamer.keys import Keyspace, alert_id_part, field, key_part, safe_name, scope_field
from streamer.schemas import Origin, Prediction, ScoredEvent
from streamer.schemas.events import Stamps
from streamer.settings import InputSettings, Settings

SAFE = re.compile(r"[A-Za-z0-9._\-]{1,64}")
SAFE_TOPIC = re.compile(r"[A-Za-z0-9._\-]{1,249}")
TICKER = re.compile(r"[A-Z][A-Z0-9]{0,5}(?:\.[A-Z]{1,2})?")
FIELD = re.compile(r"(all|topic|ticker)\|[A-Za-z0-9._\-]{1,64}\|[np]\|[A-Za-z0-9._\-]{1,64}")
BUCKET_KEY = re.compile(r"st:\{[A-Za-z0-9._\-]{1,249}:[0-9]{1,10}\}:(wm|counts|b:-?[0-9]{1,12})")
EXTRACTOR = TickerExtractor.from_csv()
ORIGIN = Origin(topic="news", partition=0, offset=1)

NASTY = ["*", "?", "[a-z]", "{", "}", "{x}", ":", "|", " ", "\n", "\r\n", "\t", "\x00", "%s",
         "%(x)s", "{0}", "{0.__class__}", "$(rm -rf /)", "`id`", "'; FLUSHALL; '", "\\",
         "a" * 100_000, "\u202e", "\u200b", "\ufeff", "\u2028", "\u00df", "\ufb00", "\u212a",
         "\uff21\uff21\uff30\uff2c", "\ud800", "😀",
         "AAPL\n", "\nAAPL", "AAPL ", "XOM}{", "XOM*", "XOM:1", "BRK.B\n"]
nasty = st.sampled_from(NASTY)
hostile = st.one_of(
    nasty,
    st.text(max_size=80),
    st.tuples(st.sampled_from(["AAPL", "XOM", "energy-oil", "news", "BRK.B"]), nasty,
              st.booleans()).map(lambda t: t[1] + t[0] if t[2] else t[0] + t[1]),
)


def refused_or_safe(make: object, *args: object) -> str | None:
    """``make(*args)``: the key it builds, or None when it refused with ValueError."""
    try:
        return make(*args)  # type: ignore[operator, no-any-return]
    except ValueError:
        return None


@settings(max_examples=300, deadline=None)
@given(hostile, hostile)
def test_field_names_hold_only_safe_parts(key: str, label: str) -> None:
    out = refused_or_safe(field, "ticker", key, "n", label)
    if out is not None:
        assert FIELD.fullmatch(out), out
        assert out.split("|") == ["ticker", key, "n", label]  # nothing forged a separator
    assert (out is not None) == bool(SAFE.fullmatch(key) and SAFE.fullmatch(label))


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
@given(st.sampled_from(["topic", "ticker", "all", "x", "topic|"]), hostile)
def test_scope_fields_and_evidence_keys_hold_only_safe_parts(scope: str, key: str) -> None:
    out = refused_or_safe(scope_field, scope, key)
    if out is not None:
        assert out == f"{scope}|{key}" and SAFE.fullmatch(key)


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
        assert re.fullmatch(r"st:\{alerts\}:claim:[A-Za-z0-9][A-Za-z0-9._:\-]{0,199}", key), key
    assert (key is None) == (refused_or_safe(alert_id_part, alert_id) is None)


@settings(max_examples=300, deadline=None)
@given(st.lists(hostile, max_size=5), hostile)
def test_input_tickers_reach_keys_only_as_bounded_symbols(given_tickers: list[str],
                                                          text: str) -> None:
    """From the wire (publisher tickers, $cashtags in text) to the Redis fields."""
    raw = orjson.dumps({"id": "n1", "source": "wire", "headline": f"{text} ${text} up",
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
        event_time=ev.event_time, origin=ev.origin, stamps=ev.stamps, scorer="test",
        sentiment=Prediction(label="negative", probs={"negative": 0.9, "positive": 0.1}),
        topic=Prediction(label="energy-oil", probs={"energy-oil": 1.0}),
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


@given(hostile)
@settings(max_examples=100, deadline=None)
def test_hostile_labels_cannot_enter_a_scored_event(label: str) -> None:
    """Topic and sentiment labels come from the model manifest; the wire model checks them."""
    try:
        pred = Prediction(label=label, probs={label: 1.0})
    except ValidationError:
        return
    assert re.fullmatch(r"[a-z0-9][a-z0-9_\-]{0,47}", pred.label)
    assert key_part(pred.label) == label


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
