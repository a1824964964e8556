"""Aggregate stage: event-time buckets of sentiment per scope key (topic, ticker, market,
stream) in Redis."""

from streamer.aggregate.delta import PartitionDelta, build_deltas
from streamer.aggregate.store import AggregateUnavailable, ApplyResult, TrendStore, WindowCounts
from streamer.keys import Keyspace

__all__ = [
    "AggregateUnavailable",
    "ApplyResult",
    "Keyspace",
    "PartitionDelta",
    "TrendStore",
    "WindowCounts",
    "build_deltas",
]
