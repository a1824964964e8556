"""Per-stage HDR histograms, mergeable across workers through Redis."""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

from streamer.schemas import Stamps

# (stage name, from stamp, to stamp). The chain sums to end_to_end.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("kafka", "produced", "consumed"),
    ("batch_wait", "consumed", "batched"),
    ("tokenize", "batched", "tokenized"),
    ("infer", "tokenized", "inferred"),
    ("aggregate", "inferred", "aggregated"),
)
END_TO_END = ("end_to_end", "produced", "aggregated")
# Not a stage of any one event: the first event of a spike (its record timestamp) to
# the alert's append to the alerts topic (Kafka's ack), per fired alert.
ALERT = ("alert", "first spike event produced", "alert appended")
# Microsecond resolution up to one hour, 3 significant digits.
_LOW_US, _HIGH_US, _DIGITS = 1, 3_600_000_000, 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOW_US, _HIGH_US, _DIGITS)


class LatencyRecorder:
    """Records stage durations from event stamps (values in microseconds)."""

    def __init__(self) -> None:
        self.histograms: dict[str, HdrHistogram] = {
            name: new_histogram() for name, _, _ in (*STAGES, END_TO_END, ALERT)
        }

    def record(self, stamps: Iterable[Stamps]) -> None:
        for s in stamps:
            for name, start, end in (*STAGES, END_TO_END):
                a, b = getattr(s, start), getattr(s, end)
                if a is not None and b is not None:
                    us = max(_LOW_US, min(_HIGH_US, round((b - a) * 1000)))
                    self.histograms[name].record_value(us)

    def record_alert(self, latency_ms: float) -> None:
        """One fired alert: first event of the spike -> alert appended. Replays of old
        data (more than the histogram's hour) are not live latency and are left out."""
        us = round(latency_ms * 1000)
        if 0 <= us <= _HIGH_US:
            self.histograms[ALERT[0]].record_value(max(_LOW_US, us))

    def encode(self) -> dict[str, str]:
        return {name: h.encode().decode("ascii") for name, h in self.histograms.items()}

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
