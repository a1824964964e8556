"""The one Redis key layout: every key the project reads or writes is built here.

``<p>`` is ``STREAMER_REDIS_KEY_PREFIX``. Everything one input partition writes shares
the hash tag ``{<topic>:<partition>}``, so the atomic apply touches one Redis Cluster
slot; a window read merges the partitions (like Kafka Streams, which keeps one state
store per partition):

    <p>:{news:3}:wm            last input offset applied (the watermark)
    <p>:{news:3}:counts        consumed / scored / dead counters, first and last bucket
    <p>:{news:3}:ids           event ids the partition has seen, scored by first offset
    <p>:{news:3}:b:<epoch s>   one event-time bucket: a hash of <scope>|<key>|<n|p>|<label>
    <p>:partitions             set of "<topic>:<partition>" that have ever written

Alert state shares the hash tag ``{alerts}``, so each of its Lua scripts touches one
slot (``streamer/alert/store.py`` and ``windows.py`` say what each key holds); evidence
is spread by scope key:

    <p>:{alerts}:meta | state | seq | lease | recent | progress | seen
    <p>:{alerts}:outbox:<sink>   <p>:{alerts}:order:<sink>   <p>:{alerts}:claim:<id>
    <p>:ev:{<scope>|<key>}       recent negative messages of one scope key

Per worker and for the benchmark's naive pipeline:

    <p>:latency:<worker>       the worker's HDR latency histograms (merged by readers)
    <p>:latency-slices:<worker>  the same per slice of wall clock: fields <slice start s>|<stage>
    <p>:naive:sentiment | ready

On a Redis Cluster (``STREAMER_REDIS_CLUSTER``, tested in tests/test_redis_cluster.py)
each tag is one slot, so no script ever spans two (the cluster client refuses one that
would); the keys outside a tag (``partitions``, ``latency:*``, ``naive:*``, evidence)
are single-key commands on whichever master holds them. A window read pipelines one
HGETALL per partition bucket, which the cluster client sends to each key's master, and
merges the partitions in the client; the SCAN patterns below run on every master.

Names that come from data (topic and sentiment labels, tickers: ``<key>`` and
``<label>`` above, and inside alert ids) may hold spaces and a little punctuation
("Energy | Oil", "M&A | Investments"). They are checked against :data:`LABEL_PATTERN`
and enter a key only percent-encoded (:func:`encode_name`: ``Energy%20%7C%20Oil``), so
keys keep the small alphabet below; readers get the exact name back from
:func:`decode_name`. Tickers and slug labels (``XOM``, ``BRK.B``, ``energy-oil``)
encode to themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, TypeGuard, cast
from urllib.parse import quote, unquote

AlertKey = Literal["meta", "state", "seq", "lease", "recent", "progress", "seen"]
NaiveKey = Literal["sentiment", "ready"]
# The Quix Streams peer of `streamer bench pipeline` (streamer/bench/peer.py).
PeerKey = Literal["topic", "ticker", "ready"]
# What events are counted under: "all" (every event: the detector's internal prior),
# a topic label, a ticker, a market (an index or exchange named in the text, under its
# canonical key: streamer/ingest/markets.py) and a stream (every event of one input kind,
# "news" or "chat": the market-wide view).
Scope = Literal["all", "topic", "ticker", "market", "stream"]
SCOPES: tuple[Scope, ...] = ("all", "topic", "ticker", "market", "stream")
# The scopes named by data, which the detector may watch and alerts carry.
AlertScope = Literal["topic", "ticker", "market", "stream"]
ALERT_SCOPES: tuple[AlertScope, ...] = ("topic", "ticker", "market", "stream")
# Keys and fields are only ever built from these bounded alphabets: free text never
# reaches a key, and a ':', '|', '{', '*' or newline inside a name could not forge
# another field, move a key to another Cluster slot or widen a SCAN pattern. Checked
# with fullmatch: a '$' anchor would also accept a trailing newline.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._\-]{1,249}")  # Kafka's own topic name rule
_FIELD_PART = re.compile(r"[A-Za-z0-9._\-]{1,64}")  # names from the machine: prefix, sink, worker
_TAG = re.compile(r"[A-Za-z0-9._\-]{1,249}:[0-9]{1,10}")
_START = re.compile(r"-?[0-9]{1,12}")  # a bucket start, epoch s

# A name from data (a head's label, a ticker, a scope key): ASCII letters, digits, space
# and . _ - | & / ( ) ' +, a letter or digit first, no space last, at most 64 characters.
# ASCII only: no look-alikes, control characters or newlines. The wire types check it
# too (schemas/types.py Label), and the JSON Schemas carry it: keep to syntax that
# ECMA regexes share.
LABEL_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9 ._\-|&/()'+]{0,62}[A-Za-z0-9._\-|&/()'+])?$"
_LABEL = re.compile(LABEL_PATTERN.removeprefix("^").removesuffix("$"))
# Such a name inside a key: percent-encoded (urllib's quote, nothing kept safe), so only
# letters, digits, '._-' and '%XX' (upper-case hex) reach Redis; at most 64 characters
# of the name.
_ENCODED = re.compile(r"(?:[A-Za-z0-9._\-]|%[0-9A-F]{2}){1,64}")
# Alert ids: '<scope>:<encoded key>:<bucket>:<kind>' (detect/core.py Decision.alert_id),
# at most 6 + 190 + 12 + 18 characters and three ':'.
ALERT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:%\-]{0,254}$"
_ALERT_ID = re.compile(ALERT_ID_PATTERN.removeprefix("^").removesuffix("$"))


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_key_part(value: object) -> bool:
    return isinstance(value, str) and _FIELD_PART.fullmatch(value) is not None


def key_part(value: object, what: str = "key part") -> str:
    """``value`` when it is a safe name from the machine (a sink, a worker id), else
    ValueError. Names from data go through :func:`encode_name` instead."""
    if not isinstance(value, str) or not is_key_part(value):
        raise ValueError(f"unsafe {what} for Redis: {str(value)[:80]!r}")
    return value


def is_label(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a name from data that may reach a key (:data:`LABEL_PATTERN`)."""
    return isinstance(value, str) and _LABEL.fullmatch(value) is not None


def encode_name(value: object, what: str = "name") -> str:
    """A label, ticker or scope key as a key part: percent-encoded, so it holds no
    separator, brace, glob character or space; ValueError outside the label alphabet."""
    if not is_label(value):
        raise ValueError(f"unsafe {what} for Redis: {str(value)[:80]!r}")
    return _quote(value)


def decode_name(part: object, what: str = "name") -> str:
    """The name :func:`encode_name` made ``part`` from; ValueError for anything it
    cannot have made (so a field read back is as safe as one written)."""
    name = _unquote(part) if isinstance(part, str) and _ENCODED.fullmatch(part) else None
    if name is None:
        raise ValueError(f"not an encoded {what}: {str(part)[:80]!r}")
    return name


# Cached: a stream has few distinct names, and every event and bucket read passes here.
@lru_cache(maxsize=4096)
def _quote(name: str) -> str:
    return quote(name, safe="")


@lru_cache(maxsize=4096)
def _unquote(part: str) -> str | None:
    try:
        name = unquote(part, errors="strict")
    except UnicodeDecodeError:  # '%FF': no UTF-8, so nothing encode_name wrote
        return None
    # Only the canonical spelling of an allowed name: no '%7c' beside '%7C', no '%2A'.
    return name if is_label(name) and _quote(name) == part else None


def episode_id(scope: str, key: str, episode: int) -> str:
    """``<scope>:<encoded key>:<fired bucket>``: shared by an episode's alerts, each of
    whose id adds its kind. Safe as a claim key's tail; unique per name (reversible)."""
    if scope not in SCOPES or not _whole(episode):
        raise ValueError(f"unsafe alert id parts: {scope!r} {episode!r}")
    return f"{scope}:{encode_name(key, 'scope key')}:{episode}"


def alert_id_part(value: object) -> str:
    """``value`` when it is a well-formed alert id (a claim key's tail), else ValueError."""
    if not isinstance(value, str) or not _ALERT_ID.fullmatch(value):
        raise ValueError(f"unsafe alert id for Redis: {str(value)[:80]!r}")
    return value


def safe_name(text: str, max_chars: int = 48, fallback: str = "x") -> str:
    """``text`` made into a key part: characters outside the alphabet become '-' (for
    names that come from the machine, like the host name in a worker id)."""
    name = re.sub(r"[^A-Za-z0-9._\-]", "-", text)[:max_chars].strip(".-")
    return name or fallback


def scope_field(scope: str, key: str) -> str:
    """``<scope>|<encoded key>`` (alert state and evidence) from validated names only."""
    if scope not in SCOPES:
        raise ValueError(f"unsafe scope key for Redis: {scope!r} {str(key)[:80]!r}")
    return f"{scope}|{encode_name(key, 'scope key')}"


def parse_scope_field(name: str) -> tuple[str, str]:
    """(scope, exact key) of a :func:`scope_field`; ValueError for anything else."""
    parts = name.split("|")
    if len(parts) != 2 or parts[0] not in SCOPES:
        raise ValueError(f"not a scope field: {name[:80]!r}")
    return parts[0], decode_name(parts[1], "scope key")


def field(scope: Scope, key: str, metric: Literal["n", "p"], label: str) -> str:
    """``<scope>|<encoded key>|<n|p>|<encoded label>``: one counter of a bucket hash."""
    return _field(scope, key, metric, label)


def parse_field(name: str) -> tuple[Scope, str, Literal["n", "p"], str]:
    """(scope, exact key, metric, exact label) of a :func:`field`; ValueError for anything
    else."""
    return _parse_field(name)


# Cached both ways: each event adds a dozen fields and each bucket read parses them all,
# and the distinct fields are few (scope keys x labels). Typed wrappers above, since a
# cached function takes any arguments.
@lru_cache(maxsize=1 << 14)
def _field(scope: str, key: str, metric: str, label: str) -> str:
    if scope not in SCOPES or metric not in ("n", "p"):
        raise ValueError(f"unknown scope or metric for a Redis field: {scope!r} {metric!r}")
    return f"{scope}|{encode_name(key)}|{metric}|{encode_name(label, 'label')}"


@lru_cache(maxsize=1 << 14)
def _parse_field(name: str) -> tuple[Scope, str, Literal["n", "p"], str]:
    parts = name.split("|")
    if len(parts) != 4 or parts[0] not in SCOPES or parts[2] not in ("n", "p"):
        raise ValueError(f"not a bucket field: {name[:80]!r}")
    scope, key, metric, label = parts
    return (cast(Scope, scope), decode_name(key), cast(Literal["n", "p"], metric),
            decode_name(label, "label"))


@dataclass(frozen=True)
class Keyspace:
    prefix: str = "st"

    def __post_init__(self) -> None:
        if not _FIELD_PART.fullmatch(self.prefix):
            raise ValueError(f"unsafe Redis key prefix: {self.prefix[:80]!r}")

    @staticmethod
    def tag(topic: str, partition: int) -> str:
        if (not isinstance(topic, str) or not _TOPIC_NAME.fullmatch(topic)
                or not _whole(partition) or not 0 <= partition < 10**10):
            raise ValueError(f"invalid topic partition {str(topic)[:80]!r}:{partition!r}")
        return f"{topic}:{partition}"

    @staticmethod
    def _checked(tag: str) -> str:
        # Tags also come back from Redis (the partitions set): checked again on use.
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise ValueError(f"invalid partition tag for Redis: {str(tag)[:80]!r}")
        return tag

    def watermark(self, tag: str) -> str:
        return f"{self.prefix}:{{{self._checked(tag)}}}:wm"

    def counts(self, tag: str) -> str:
        return f"{self.prefix}:{{{self._checked(tag)}}}:counts"

    def seen_ids(self, tag: str) -> str:
        """Sorted set of the event ids the partition has seen, scored by first offset."""
        return f"{self.prefix}:{{{self._checked(tag)}}}:ids"

    def bucket(self, tag: str, start_s: int) -> str:
        if not _whole(start_s):
            raise ValueError(f"bucket start must be whole seconds: {start_s!r}")
        return f"{self.prefix}:{{{self._checked(tag)}}}:b:{start_s}"

    @property
    def bucket_pattern(self) -> str:
        """SCAN pattern of every partition's buckets (the prefix alphabet has no glob
        characters)."""
        return f"{self.prefix}:{{*}}:b:*"

    def parse_bucket(self, key: str) -> tuple[str, int] | None:
        """(tag, start) of a bucket key of this prefix, else None."""
        head = f"{self.prefix}:{{"
        tag, sep, start = key.removeprefix(head).rpartition("}:b:")
        if (not key.startswith(head) or not sep or not _TAG.fullmatch(tag)
                or not _START.fullmatch(start)):
            return None
        return tag, int(start)

    @property
    def partitions(self) -> str:
        return f"{self.prefix}:partitions"

    # --- alerts: one hash tag, one Cluster slot -----------------------------------------
    @property
    def alerts(self) -> str:
        return f"{self.prefix}:{{alerts}}"

    def alert(self, name: AlertKey) -> str:
        return f"{self.alerts}:{name}"

    def outbox(self, sink: str) -> str:
        return f"{self.alerts}:outbox:{key_part(sink, 'sink')}"

    def order(self, sink: str) -> str:
        return f"{self.alerts}:order:{key_part(sink, 'sink')}"

    def claim(self, alert_id: str) -> str:
        return f"{self.alerts}:claim:{alert_id_part(alert_id)}"

    def evidence(self, scope: str, key: str) -> str:
        return f"{self.prefix}:ev:{{{scope_field(scope, key)}}}"

    # --- per worker, and the benchmark's naive pipeline ---------------------------------
    def latency(self, worker: str) -> str:
        return f"{self.prefix}:latency:{key_part(worker, 'worker id')}"

    def latency_match(self, worker: str | None = None) -> str:
        """SCAN pattern of every worker's latency key, or exactly one worker's."""
        return self.latency(worker) if worker is not None else f"{self.prefix}:latency:*"

    def latency_slices(self, worker: str) -> str:
        """The worker's histograms per slice of wall clock (the recent-window views)."""
        return f"{self.prefix}:latency-slices:{key_part(worker, 'worker id')}"

    def latency_slices_match(self, worker: str | None = None) -> str:
        """SCAN pattern of every worker's slices key, or exactly one worker's."""
        return (self.latency_slices(worker) if worker is not None
                else f"{self.prefix}:latency-slices:*")

    def naive(self, name: NaiveKey) -> str:
        return f"{self.prefix}:naive:{name}"

    def peer(self, name: PeerKey) -> str:
        return f"{self.prefix}:peer:{name}"

    @property
    def everything(self) -> str:
        """SCAN pattern of every key under this prefix (for a benchmark's clean-up)."""
        return f"{self.prefix}:*"
