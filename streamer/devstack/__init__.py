"""Local Kafka + Redis for development and tests, without Docker."""

from __future__ import annotations

from pydantic import BaseModel

from streamer.devstack._proc import StackError, free_port
from streamer.devstack.kafka import KafkaStatus, LocalKafka
from streamer.devstack.redis_server import LocalRedis, RedisStatus
from streamer.settings import Settings

__all__ = [
    "KafkaStatus",
    "LocalKafka",
    "LocalRedis",
    "RedisStatus",
    "StackError",
    "StackStatus",
    "free_port",
    "stack_down",
    "stack_status",
    "stack_up",
]


class StackStatus(BaseModel):
    kafka: KafkaStatus
    redis: RedisStatus


def stack_status(settings: Settings) -> StackStatus:
    return StackStatus(kafka=LocalKafka(settings).status(), redis=LocalRedis(settings).status())


def stack_up(settings: Settings) -> StackStatus:
    """Start Redis (fast) then Kafka; both calls are no-ops for servers already running."""
    LocalRedis(settings).start()
    LocalKafka(settings).start()
    return stack_status(settings)


def stack_down(settings: Settings) -> StackStatus:
    """Stop both; Kafka is attempted even when stopping Redis fails."""
    try:
        LocalRedis(settings).stop()
    finally:
        LocalKafka(settings).stop()
    return stack_status(settings)
