"""Redis key layout.

Everything one input partition writes shares the hash tag ``{<topic>:<partition>}``,
so the atomic apply touches one Redis Cluster slot; a window read merges the
partitions (like Kafka Streams, which keeps one state store per partition).

    <p>:{news:3}:wm            last input offset applied (the watermark)
    <p>:{news:3}:counts        consumed / scored / dead counters, first and last bucket
    <p>:{news:3}:b:<epoch s>   one event-time bucket: a hash of <scope>|<key>|<n|p>|<label>
    <p>:partitions             set of "<topic>:<partition>" that have ever written
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Scope = Literal["all", "topic", "ticker"]
SCOPES: tuple[Scope, ...] = ("all", "topic", "ticker")
# Keys and fields are only ever built from these bounded alphabets: free text never
# reaches a key, and a ':' or '|' inside a name could not forge another field.
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
_FIELD_PART = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def field(scope: Scope, key: str, metric: Literal["n", "p"], label: str) -> str:
    for part in (key, label):
        if not _FIELD_PART.match(part):
            raise ValueError(f"unsafe name for a Redis field: {part!r}")
    return f"{scope}|{key}|{metric}|{label}"


def parse_field(name: str) -> tuple[str, str, str, str]:
    scope, key, metric, label = name.split("|")
    return scope, key, metric, label


@dataclass(frozen=True)
class Keyspace:
    prefix: str = "st"

    @staticmethod
    def tag(topic: str, partition: int) -> str:
        if not _TOPIC_NAME.match(topic) or partition < 0:
            raise ValueError(f"invalid topic partition {topic!r}:{partition}")
        return f"{topic}:{partition}"

    def watermark(self, tag: str) -> str:
        return f"{self.prefix}:{{{tag}}}:wm"

    def counts(self, tag: str) -> str:
        return f"{self.prefix}:{{{tag}}}:counts"

    def bucket(self, tag: str, start_s: int) -> str:
        return f"{self.prefix}:{{{tag}}}:b:{start_s}"

    @property
    def partitions(self) -> str:
        return f"{self.prefix}:partitions"
