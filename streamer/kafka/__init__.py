"""Kafka plumbing shared by the worker, the producers and the CLI."""

from streamer.kafka.admin import ensure_topics
from streamer.kafka.producer import make_producer

__all__ = ["ensure_topics", "make_producer"]
