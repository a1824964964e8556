"""The project's Kafka producer settings in one place."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from streamer.kafka.security import client_options
from streamer.settings import Settings


def max_request_bytes(settings: Settings) -> int:
    """The largest produce request the project's producers send: twice the largest
    accepted message, and never under Kafka's 1 MiB default."""
    return max(1_048_576, settings.input.max_message_bytes * 2)


def make_producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    """An idempotent producer (acks=all): retries never write a record twice.

    Its own retries of a request in flight keep the record's sequence number, so the
    broker drops a copy it already has; a record ``send`` could not queue within the
    request timeout was never handed over, and sending it again is safe too.
    """
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka.bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": settings.kafka.linger_ms,
        "request_timeout_ms": int(settings.kafka.request_timeout_s * 1000),
        "compression_type": None,
        "max_request_size": max_request_bytes(settings),
        **client_options(settings.kafka),
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)
