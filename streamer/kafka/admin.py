"""Create the project's topics up front, with the configured partition count; delete
topics a run made for itself (benchmark namespaces)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streamer.kafka.security import client_options, start_client
from streamer.settings import Settings

log = logging.getLogger(__name__)


def project_topics(settings: Settings) -> list[str]:
    inputs = list(settings.topics.inputs)
    return [
        *inputs,
        *(settings.topics.dlq(t) for t in inputs),
        settings.topics.scored,
        settings.topics.alerts,
    ]


async def ensure_topics(
    settings: Settings, topics: Iterable[str] | None = None, partitions: int | None = None
) -> list[str]:
    """Create missing topics; returns the names created. Existing ones are left as they are."""
    names = list(topics) if topics is not None else project_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap,
                                **client_options(settings.kafka))
    await start_client(settings.kafka, admin)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if not missing:
            return []
        n = partitions or settings.topics.partitions
        # Another process may create one between our list and create: that is fine.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(t, num_partitions=n, replication_factor=1) for t in missing]
            )
        log.info("created topics %s with %d partitions", missing, n)
        return missing
    finally:
        await admin.close()


async def delete_topics(settings: Settings, topics: Iterable[str]) -> list[str]:
    """Delete those of ``topics`` that exist; returns the names deleted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap,
                                **client_options(settings.kafka))
    await start_client(settings.kafka, admin)
    try:
        existing = set(await admin.list_topics())
        gone = [t for t in topics if t in existing]
        if gone:
            await admin.delete_topics(gone)
        return gone
    finally:
        await admin.close()
