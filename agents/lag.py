"""Consumer lag per input partition, read after every batch without a broker round trip.

The lag of a partition is its end (the last stable offset under exactly-once, else the
high watermark, as of the consumer's latest fetch) minus the next offset this worker
will process. It counts what waits in Kafka and what waits in the stream's buffers,
so it is the backlog that the adaptive batcher must see: under overload most of it sits
in Kafka, out of sight of the in-process queue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import faust
from faust.types import TP, EventT
from prometheus_client import Gauge


class ConsumerLag:
    def __init__(self, app: faust.App, gauge: Gauge) -> None:
        self.app = app
        self.gauge = gauge
        self._lag: dict[TP, int] = {}

    def after_batch(self, events: Sequence[EventT]) -> int:
        """Update the partitions of ``events``; returns the total lag of this worker's
        assigned partitions among those seen (0 when the consumer cannot tell)."""
        last: dict[TP, int] = {}
        for e in events:
            tp = e.message.tp
            last[tp] = max(last.get(tp, -1), e.message.offset)
        for tp, offset in last.items():
            try:
                end = self.app.consumer.highwater(tp)
            except Exception:  # not fetched yet, or revoked meanwhile
                continue
            if end is None:
                continue
            self._lag[tp] = max(0, int(end) - offset - 1)
            self.gauge.labels(tp.topic, str(tp.partition)).set(self._lag[tp])
        self._forget_revoked()
        return sum(self._lag.values())

    def _forget_revoked(self) -> None:
        try:
            assigned = self.app.consumer.assignment()
        except Exception:
            return
        for tp in [tp for tp in self._lag if tp not in assigned]:
            del self._lag[tp]
            with contextlib.suppress(KeyError):
                self.gauge.remove(tp.topic, str(tp.partition))
