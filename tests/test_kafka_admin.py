"""Topic administration against the real broker."""

from __future__ import annotations

import uuid

from streamer.kafka.admin import delete_topics, ensure_topics
from streamer.settings import Settings


async def test_topics_a_run_made_are_deleted_and_missing_ones_skipped(
    kafka_bootstrap: str,
) -> None:
    settings = Settings(_env_file=None, kafka_bootstrap=kafka_bootstrap)
    made, never = f"t-admin-{uuid.uuid4().hex[:8]}", f"t-never-{uuid.uuid4().hex[:8]}"
    assert await ensure_topics(settings, [made], partitions=1) == [made]
    assert await delete_topics(settings, [made, never]) == [made]
