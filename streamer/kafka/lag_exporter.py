"""The consumer group's lag from Kafka as Prometheus metrics, outside any worker.

``streamer lag --serve`` runs it: every STREAMER_WORKER_LAG_EXPORT_INTERVAL_S it reads the
group's committed offsets and the partitions' end offsets (``read_group_lag``) and serves
them on its own /metrics, so a lag panel or alert keeps its data when every worker is
down, exactly when it matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamer.kafka.lag import GroupLag, read_group_lag
from streamer.settings import Settings

log = logging.getLogger(__name__)


class LagMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        labels = ["group", "topic", "partition"]
        self.lag = Gauge("streamer_group_lag", "Records of a partition the consumer group "
                         "has not committed (end offset minus committed offset), read from "
                         "Kafka", labels, registry=r)
        self.committed = Gauge("streamer_group_committed_offset", "The group's committed "
                               "offset (-1: none yet)", labels, registry=r)
        self.end = Gauge("streamer_group_end_offset", "The partition's end offset", labels,
                         registry=r)
        self.reads = Counter("streamer_group_lag_reads", "Reads of the group's offsets "
                             "(result: ok, failed)", ["result"], registry=r)
        self.last_read = Gauge("streamer_group_lag_last_read_timestamp_seconds",
                               "Unix time of the last successful read", registry=r)
        for result in ("ok", "failed"):
            self.reads.labels(result)

    def show(self, read: GroupLag) -> None:
        for p in read.partitions:
            key = (read.group, p.topic, str(p.partition))
            self.lag.labels(*key).set(p.lag)
            self.committed.labels(*key).set(-1 if p.committed is None else p.committed)
            self.end.labels(*key).set(p.end)
        self.reads.labels("ok").inc()
        self.last_read.set(time.time())


async def export_lag(settings: Settings, metrics: LagMetrics, stop: asyncio.Event,
                     topics: Iterable[str] | None = None, group: str | None = None) -> None:
    """Read and show the group's lag every interval until ``stop`` is set. A failed read
    (Kafka down) is counted and logged; the last values stay and the next read retries."""
    names = list(topics) if topics is not None else None
    interval = settings.worker.lag_export_interval_s
    while not stop.is_set():
        try:
            read = await read_group_lag(settings, names, group)
            if read.missing_topics:
                log.warning("no such topic on %s: %s", settings.kafka.bootstrap,
                            ", ".join(read.missing_topics))
            metrics.show(read)
        except Exception as exc:  # an exporter outlives a broker outage: retried next round
            metrics.reads.labels("failed").inc()
            log.warning("could not read the consumer lag from Kafka at %s: %s",
                        settings.kafka.bootstrap, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
