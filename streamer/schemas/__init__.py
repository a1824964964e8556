"""Typed wire formats: what goes in and out of Kafka, validated at the boundary."""

from streamer.schemas.deadletter import DeadLetter
from streamer.schemas.events import Event, ModelRef, Origin, Prediction, ScoredEvent, Stamps
from streamer.schemas.inputs import SCHEMA_VERSION, ChatMessage, InputMessage, NewsItem

__all__ = [
    "SCHEMA_VERSION",
    "ChatMessage",
    "DeadLetter",
    "Event",
    "InputMessage",
    "ModelRef",
    "NewsItem",
    "Origin",
    "Prediction",
    "ScoredEvent",
    "Stamps",
]
