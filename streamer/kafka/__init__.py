"""Kafka plumbing shared by the worker, the producers and the CLI."""

from streamer.kafka.admin import ensure_topics
from streamer.kafka.producer import make_producer
from streamer.kafka.security import KafkaSecurityError, client_options, preflight

__all__ = ["KafkaSecurityError", "client_options", "ensure_topics", "make_producer", "preflight"]
