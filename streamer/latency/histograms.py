"""Per-stage HDR histograms, mergeable across workers through Redis.

Two views of the same durations: since the worker started (one histogram per stage), and
per slice of wall clock (``slice_s`` wide, by the time the event's end to end finished),
which readers merge over a recent window (``STREAMER_LATENCY_WINDOW_S``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from hdrh.histogram import HdrHistogram

from streamer.schemas import Stamps

# (stage name, from stamp, to stamp). The chain sums to end_to_end.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("queue", "produced", "requested"),
    ("kafka", "requested", "consumed"),
    ("batch_wait", "consumed", "batched"),
    ("tokenize", "batched", "tokenized"),
    ("infer", "tokenized", "inferred"),
    ("aggregate", "inferred", "aggregated"),
)
END_TO_END = ("end_to_end", "produced", "aggregated")
# Not a stage of any one event: the first event of a spike (its record timestamp) to
# the alert's append to the alerts topic (Kafka's ack), per fired alert.
ALERT = ("alert", "first spike event produced", "alert appended")
# What each row means, in words, for every table, chart and page that shows them.
MEANING: dict[str, str] = {
    "queue": "backlog: in Kafka while the worker was busy",
    "kafka": "the Kafka hop to a ready worker",
    "batch_wait": "waiting for the micro-batch",
    "tokenize": "tokenizing the batch",
    "infer": "the model, on the batch",
    "aggregate": "the Redis write, to its ack",
    "end_to_end": "record timestamp -> in Redis",
    "alert": "spike's first message -> alert on Kafka",
}
# Microsecond resolution up to one hour, 3 significant digits.
_LOW_US, _HIGH_US, _DIGITS = 1, 3_600_000_000, 3
# Slices kept in memory: the newest and the one before (a late recording goes there).
_SLICES_KEPT = 2
SLICE_WIDTH_FIELD = "slice_s"


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOW_US, _HIGH_US, _DIGITS)


def requested_at(produced: float | None, ready: float | None,
                 consumed: float | None) -> float | None:
    """The 'requested' stamp: the later of the record's timestamp and the moment the
    worker's stream was last ready for a record before taking it, never after it was
    taken. Unknown readiness (None): the record's timestamp (all its wait counts as the
    Kafka hop, none as queue)."""
    if produced is None:
        return None
    if ready is None:
        return produced
    at = max(produced, ready)
    return at if consumed is None else min(consumed, at)


def slice_field(start_s: int, stage: str) -> str:
    return f"{start_s}|{stage}"


def parse_slice_field(field: str) -> tuple[int, str] | None:
    start, sep, stage = field.partition("|")
    if not sep or not start.isdigit():
        return None
    return int(start), stage


def difference(after: dict[str, HdrHistogram],
               before: dict[str, HdrHistogram]) -> dict[str, HdrHistogram]:
    """Per stage, what was recorded between two snapshots of the same histograms."""
    out: dict[str, HdrHistogram] = {}
    for name, h in after.items():
        prev = before.get(name)
        old = ({it.value_iterated_to: it.count_at_value_iterated_to
                for it in prev.get_recorded_iterator()} if prev is not None else {})
        d = new_histogram()
        for it in h.get_recorded_iterator():
            n = it.count_at_value_iterated_to - old.get(it.value_iterated_to, 0)
            if n > 0:
                d.record_value(it.value_iterated_to, n)
        out[name] = d
    return out


# Told each recorded duration: (stage name, seconds), e.g. a Prometheus histogram's observe.
StageObserver = Callable[[str, float], None]


class LatencyRecorder:
    """Records stage durations from event stamps (values in microseconds).

    ``observer``, when given, is told every duration recorded (the same clamped value,
    in seconds), so that another view of the latency (the worker's Prometheus histogram)
    sees exactly the events and stages these histograms see.

    Besides the histograms since start, every duration goes into the slice of wall clock
    (``slice_s`` wide) in which its event's end to end finished (its 'aggregated'
    stamp): ``take_slices`` hands over the slices changed since it was last called.
    """

    def __init__(self, observer: StageObserver | None = None, slice_s: int = 30) -> None:
        self.histograms: dict[str, HdrHistogram] = {
            name: new_histogram() for name, _, _ in (*STAGES, END_TO_END, ALERT)
        }
        self.observer = observer
        self.slice_s = max(1, int(slice_s))
        self.slices: dict[int, dict[str, HdrHistogram]] = {}
        self._dirty: set[int] = set()
        self._taken: set[int] = set()
        self.pushed: set[int] = set()

    def _slice(self, at_ms: float | None) -> dict[str, HdrHistogram]:
        at_s = time.time() if at_ms is None else at_ms / 1000.0
        start = int(at_s // self.slice_s) * self.slice_s
        if start not in self.slices:
            if self.slices and start < min(self.slices):
                start = min(self.slices)  # late: into the oldest slice still held
            else:
                self.slices[start] = {}
                for old in sorted(self.slices)[:-_SLICES_KEPT]:
                    if old not in self._dirty:
                        del self.slices[old]
        self._dirty.add(start)
        return self.slices[start]

    def record(self, stamps: Iterable[Stamps]) -> None:
        observe = self.observer
        for s in stamps:
            piece = self._slice(s.aggregated)
            for name, start, end in (*STAGES, END_TO_END):
                a, b = getattr(s, start), getattr(s, end)
                if a is not None and b is not None:
                    us = max(_LOW_US, min(_HIGH_US, round((b - a) * 1000)))
                    self.histograms[name].record_value(us)
                    h = piece.get(name)
                    if h is None:
                        h = piece[name] = new_histogram()
                    h.record_value(us)
                    if observe is not None:
                        observe(name, us / 1e6)

    def record_alert(self, latency_ms: float) -> None:
        """One fired alert: first event of the spike -> alert appended. Replays of old
        data (more than the histogram's hour) are not live latency and are left out."""
        us = round(latency_ms * 1000)
        if 0 <= us <= _HIGH_US:
            value = max(_LOW_US, us)
            self.histograms[ALERT[0]].record_value(value)
            piece = self._slice(None)
            h = piece.get(ALERT[0])
            if h is None:
                h = piece[ALERT[0]] = new_histogram()
            h.record_value(value)

    def encode(self) -> dict[str, str]:
        return {name: h.encode().decode("ascii") for name, h in self.histograms.items()}

    def take_slices(self) -> dict[str, str]:
        """The slices changed since the last call, as Redis hash fields
        (``<slice start s>|<stage>``, plus the slice width), each slice whole; slices
        older than the newest two are then let go."""
        out = {slice_field(start, name): h.encode().decode("ascii")
               for start in sorted(self._dirty) for name, h in self.slices[start].items()}
        self.pushed |= self._dirty
        self._taken = set(self._dirty)
        self._dirty.clear()
        for old in sorted(self.slices)[:-_SLICES_KEPT]:
            del self.slices[old]
        if out:
            out[SLICE_WIDTH_FIELD] = str(self.slice_s)
        return out

    def retake(self) -> None:
        """The last slices taken did not reach Redis: hand those still held over again."""
        self._dirty |= {start for start in self._taken if start in self.slices}

    def expired_fields(self, now_s: float, retention_s: float) -> list[str]:
        """Fields of pushed slices that ended more than ``retention_s`` ago (to delete);
        they are forgotten here."""
        gone = [s for s in self.pushed if s + self.slice_s < now_s - retention_s]
        self.pushed.difference_update(gone)
        return [slice_field(s, name) for s in gone
                for name, _, _ in (*STAGES, END_TO_END, ALERT)]

    @staticmethod
    def decode_merge(encoded: Iterable[dict[str, str]]) -> dict[str, HdrHistogram]:
        merged: dict[str, HdrHistogram] = {}
        for payload in encoded:
            for name, blob in payload.items():
                h = HdrHistogram.decode(blob.encode("ascii"))
                if name in merged:
                    merged[name].add(h)
                else:
                    merged[name] = h
        return merged
