"""What one batch adds to the aggregates, grouped by input partition."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from streamer.aggregate.scopes import event_scope_keys
from streamer.keys import field as field_name
from streamer.schemas import ScoredEvent


@dataclass
class PartitionDelta:
    """Increments for one input partition; applied atomically with its watermark.

    ``offsets`` lists every input offset the batch covers for this partition,
    scored or dead-lettered, so the counters account for each consumed record.
    """

    topic: str
    partition: int
    offsets: list[int] = field(default_factory=list)
    scored: int = 0
    dead: int = 0
    counts: dict[int, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    sums: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))

    @property
    def first_offset(self) -> int:
        return min(self.offsets)

    @property
    def last_offset(self) -> int:
        return max(self.offsets)


def _add_event(delta: PartitionDelta, event: ScoredEvent, bucket_seconds: int) -> None:
    ts = int(event.event_time.timestamp())
    bucket = ts - ts % bucket_seconds
    counts, sums = delta.counts[bucket], delta.sums[bucket]
    label = event.sentiment.label
    for scope, key in event_scope_keys(event):
        n = field_name(scope, key, "n", label)
        counts[n] = counts.get(n, 0) + 1
        for sent_label, prob in event.sentiment.probs.items():
            p = field_name(scope, key, "p", sent_label)
            sums[p] = sums.get(p, 0.0) + prob


def build_deltas(
    scored: Iterable[ScoredEvent],
    dead: Iterable[tuple[str, int, int]],
    bucket_seconds: int,
) -> dict[tuple[str, int], PartitionDelta]:
    """Group a batch's scored events and dead-lettered (topic, partition, offset)s."""
    deltas: dict[tuple[str, int], PartitionDelta] = {}

    def get(topic: str, partition: int) -> PartitionDelta:
        key = (topic, partition)
        if key not in deltas:
            deltas[key] = PartitionDelta(topic, partition)
        return deltas[key]

    for event in scored:
        d = get(event.origin.topic, event.origin.partition)
        d.offsets.append(event.origin.offset)
        d.scored += 1
        _add_event(d, event, bucket_seconds)
    for topic, partition, offset in dead:
        d = get(topic, partition)
        d.offsets.append(offset)
        d.dead += 1
    return deltas
