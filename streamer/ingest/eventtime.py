"""Event times against the worker's wall clock: how far ahead of it an event may lie.

A producer's clock may run a little ahead, so a few minutes are allowed
(``STREAMER_MAX_FUTURE_SKEW_S``). Beyond that an event is dead-lettered as ``event_time_future``:
kept, it would move its partition's progress, and with it the event-time watermark,
past every real event, and the detector would close (and skip) the buckets of the
live stream. Old event times are kept whatever their age: a backfill replays the
past in event time and must alert as the live stream did.
"""

from __future__ import annotations

from datetime import UTC, datetime

from streamer.ingest.decode import DecodeFailure
from streamer.schemas import Event


def check_event_time(event: Event, now_ms: float, max_future_skew_s: float
                     ) -> Event | DecodeFailure:
    """``event``, or a dead letter when it lies more than the allowed skew after now."""
    ahead_s = event.event_time.timestamp() - now_ms / 1000.0
    if ahead_s <= max_future_skew_s:
        return event
    now = datetime.fromtimestamp(now_ms / 1000.0, UTC)
    return DecodeFailure(
        "event_time_future",
        f"event time {event.event_time.isoformat()} is {ahead_s:.0f}s after the worker's clock "
        f"({now.isoformat(timespec='seconds')}); at most {max_future_skew_s:g}s is allowed "
        "(STREAMER_MAX_FUTURE_SKEW_S)",
    )
