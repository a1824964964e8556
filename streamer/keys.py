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
    <p>:naive:sentiment | ready
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

AlertKey = Literal["meta", "state", "seq", "lease", "recent", "progress", "seen"]
NaiveKey = Literal["sentiment", "ready"]
Scope = Literal["all", "topic", "ticker"]
SCOPES: tuple[Scope, ...] = ("all", "topic", "ticker")
# Keys and fields are only ever built from these bounded alphabets: free text never
# reaches a key, and a ':', '|', '{', '*' or newline inside a name could not forge
# another field, move a key to another Cluster slot or widen a SCAN pattern. Checked
# with fullmatch: a '$' anchor would also accept a trailing newline.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._\-]{1,249}")  # Kafka's own topic name rule
_FIELD_PART = re.compile(r"[A-Za-z0-9._\-]{1,64}")  # tickers, topic and sentiment labels
_TAG = re.compile(r"[A-Za-z0-9._\-]{1,249}:[0-9]{1,10}")
_START = re.compile(r"-?[0-9]{1,12}")  # a bucket start, epoch s
# Alert ids: '<scope>:<key>:<bucket>:<kind>' from validated parts (schemas/alerts.py AlertId).
_ALERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,199}")


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_key_part(value: object) -> bool:
    return isinstance(value, str) and _FIELD_PART.fullmatch(value) is not None


def key_part(value: object, what: str = "key part") -> str:
    """``value`` when it is a safe scope key or label (tickers, topic labels), else ValueError."""
    if not isinstance(value, str) or not is_key_part(value):
        raise ValueError(f"unsafe {what} for Redis: {str(value)[:80]!r}")
    return value


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
    """``<scope>|<key>`` (alert state and evidence) from validated names only."""
    if scope not in SCOPES:
        raise ValueError(f"unsafe scope key for Redis: {scope!r} {str(key)[:80]!r}")
    return f"{scope}|{key_part(key, 'scope key')}"


def parse_scope_field(name: str) -> tuple[str, str]:
    scope, key = name.split("|", 1)
    return scope, key


def field(scope: Scope, key: str, metric: Literal["n", "p"], label: str) -> str:
    if scope not in SCOPES or metric not in ("n", "p"):
        raise ValueError(f"unknown scope or metric for a Redis field: {scope!r} {metric!r}")
    return f"{scope}|{key_part(key, 'name')}|{metric}|{key_part(label, 'label')}"


def parse_field(name: str) -> tuple[str, str, str, str]:
    scope, key, metric, label = name.split("|")
    return scope, key, metric, label


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

    def naive(self, name: NaiveKey) -> str:
        return f"{self.prefix}:naive:{name}"

    @property
    def everything(self) -> str:
        """SCAN pattern of every key under this prefix (for a benchmark's clean-up)."""
        return f"{self.prefix}:*"
