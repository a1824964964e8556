"""Consumer lag of a group: how far its committed offsets trail the partitions' ends.

Read from the broker (the group's committed offsets and the partitions' end offsets),
not from a worker, so it is there when no worker is: exactly when it matters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamer.kafka.security import client_options, start_client
from streamer.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    """One partition as the group stands on it. ``committed`` is None when the group has
    committed nothing there yet (then all of the partition counts as lag)."""

    topic: str
    partition: int
    committed: int | None
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.committed or 0))


@dataclass(frozen=True)
class GroupLag:
    group: str
    partitions: list[PartitionLag]
    missing_topics: list[str]  # asked for, but the broker does not have them

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)


async def read_group_lag(settings: Settings, topics: Iterable[str] | None = None,
                         group: str | None = None) -> GroupLag:
    """The group's committed offset, the end offset and the lag of every partition of
    ``topics`` (default: the input topics; group default: the workers' STREAMER_APP_ID)."""
    group = group or settings.worker.app_id
    names = list(topics) if topics is not None else list(settings.topics.inputs)
    security = client_options(settings.kafka)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap, **security)
    await start_client(settings.kafka, admin)
    try:
        # Made only once the broker answered: one never started warns when collected.
        probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=None,
                                 enable_auto_commit=False, **security)
        await start_client(settings.kafka, probe)
        try:
            described = await admin.describe_topics(names)
            missing = sorted(d["topic"] for d in described if d.get("error_code"))
            tps = sorted((TopicPartition(d["topic"], p["partition"]) for d in described
                          if not d.get("error_code") for p in d["partitions"]),
                         key=lambda tp: (tp.topic, tp.partition))
            ends = await probe.end_offsets(tps) if tps else {}
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        finally:
            await probe.stop()
    finally:
        await admin.close()
    rows = []
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else None
        rows.append(PartitionLag(tp.topic, tp.partition, done, int(ends[tp])))
    return GroupLag(group, rows, missing)


async def group_lag(settings: Settings, topics: Iterable[str] | None = None,
                    group: str | None = None) -> dict[TopicPartition, int]:
    """Per input partition: end offset minus the group's committed offset (all of it
    when nothing is committed yet). Zero everywhere means every message was consumed
    and its results committed."""
    read = await read_group_lag(settings, topics, group)
    return {TopicPartition(p.topic, p.partition): p.lag for p in read.partitions}
