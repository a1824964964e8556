"""The project's Kafka producer settings in one place."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from streamer.kafka.security import client_options
from streamer.settings import Settings


def max_request_bytes(settings: Settings) -> int:
    """The largest produce request the project's producers send: twice the largest
    accepted message, and never under Kafka's 1 MiB default."""
    return max(1_048_576, settings.max_message_bytes * 2)


def make_producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    """An idempotent producer (acks=all): retries never write a record twice."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": settings.kafka_linger_ms,
        "compression_type": None,
        "max_request_size": max_request_bytes(settings),
        **client_options(settings),
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)
