"""Consumer lag of a group: how far its committed offsets trail the partitions' ends."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streamer.kafka.security import client_options, start_client
from streamer.settings import Settings


async def group_lag(settings: Settings, topics: Iterable[str] | None = None,
                    group: str | None = None) -> dict[TopicPartition, int]:
    """Per input partition: end offset minus the group's committed offset (all of it
    when nothing is committed yet). Zero everywhere means every message was consumed
    and its results committed."""
    group = group or settings.worker.app_id
    names = list(topics) if topics is not None else list(settings.topics.inputs)
    security = client_options(settings.kafka)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap, **security)
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=None,
                             enable_auto_commit=False, **security)
    await start_client(settings.kafka, admin)
    await start_client(settings.kafka, probe)
    try:
        described = await admin.describe_topics(names)
        tps = [TopicPartition(d["topic"], p["partition"]) for d in described
               if not d.get("error_code") for p in d["partitions"]]
        ends = await probe.end_offsets(tps) if tps else {}
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        lag: dict[TopicPartition, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[tp] = max(0, ends[tp] - done)
        return lag
    finally:
        await probe.stop()
        await admin.close()
