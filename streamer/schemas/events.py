"""The event that flows through the stages, and the scored record subscribers read."""

from __future__ import annotations

import re
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamer.keys import LABEL_PATTERN
from streamer.schemas.inputs import SCHEMA_VERSION, WireModel
from streamer.schemas.types import Identifier, Label, SentimentLabel, Ticker, UtcDatetime

Kind = Literal["news", "chat"]
BUNDLE_ID_PATTERN = r"^[0-9a-f]{16}$"


class Origin(BaseModel):
    """Where the input record sits in Kafka: enough to find it again."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class Stamps(BaseModel):
    """Per-stage times in epoch milliseconds (wall clock).

    ``produced`` is the Kafka record timestamp (the producer's wall clock). The
    worker's own stamps come from one monotonic clock anchored to the wall clock
    at start-up, so differences between them are monotonic-accurate while staying
    comparable with ``produced``.
    """

    produced: float | None = None
    # The later of ``produced`` and the moment the worker's stream was last ready for a
    # record before taking this one: before it the record queued (the worker was busy),
    # after it the record was in transit to the worker (streamer/latency/histograms.py).
    requested: float | None = None
    consumed: float | None = None
    batched: float | None = None
    tokenized: float | None = None
    inferred: float | None = None
    aggregated: float | None = None
    alerted: float | None = None


L = TypeVar("L", bound=str)


class Prediction(BaseModel, Generic[L]):
    """One head's answer: the top label and every label's probability.

    ``ScoredEvent`` narrows the labels per head (``Prediction[SentimentLabel]``: an enum
    in the JSON Schema); a plain ``Prediction`` given there is validated against it."""

    model_config = ConfigDict(frozen=True)

    label: L
    probs: dict[L, float]

    @field_validator("label")
    @classmethod
    def _label_alphabet(cls, value: str) -> str:
        # Unparametrized (or a head's plain strings): still the label alphabet of the keys.
        if not re.fullmatch(LABEL_PATTERN, value):
            raise ValueError(f"a label must match {LABEL_PATTERN}")
        return value

    @field_validator("probs")
    @classmethod
    def _probs_alphabet(cls, value: dict[str, float]) -> dict[str, float]:
        for label in value:
            cls._label_alphabet(label)
        return value

    @classmethod
    def model_parametrized_name(cls, params: tuple[Any, ...]) -> str:
        # The JSON Schema's definition names: SentimentPrediction, TopicPrediction.
        return "SentimentPrediction" if params == (SentimentLabel,) else "TopicPrediction"


class ModelRef(BaseModel):
    """The model that scored an event: which bundle (by content) and which of its variants.

    ``bundle_id`` changes whenever anything that decides a score changes (weights,
    tokenizer, labels, truncation), and only then: two copies of one bundle share it.
    """

    model_config = ConfigDict(frozen=True)

    bundle_id: str = Field(pattern=BUNDLE_ID_PATTERN,
                           description="Content hash of the bundle (16 hex digits).")
    bundle: str = Field(min_length=1, max_length=128,
                        description="The bundle's name (its build directory), e.g. 'full'.")
    variant: str = Field(min_length=1, max_length=128,
                         description="The variant serving, e.g. 'student3-int8'.")

    def short(self) -> str:
        """``full/student3-int8@3f2a9c1e`` for logs and tables."""
        return f"{self.bundle}/{self.variant}@{self.bundle_id[:8]}"


class Event(BaseModel):
    """The normalized internal event; stamps ride along through every stage."""

    id: Identifier
    kind: Kind
    source: Identifier = Field(description="News source or chat channel.")
    text: str
    tickers: list[Ticker]
    markets: list[Label] = Field(
        default_factory=list, description="Markets named in the text (canonical keys).")
    event_time: UtcDatetime
    origin: Origin
    stamps: Stamps = Field(default_factory=Stamps)


class ScoredEvent(WireModel):
    """Written to the ``scored`` topic, keyed by event id.

    Consumers that read without ``isolation.level=read_committed`` may see a record
    twice after a worker crash; ``id`` + ``origin`` identify repeats.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    id: Identifier
    kind: Kind
    source: Identifier
    snippet: str = Field(max_length=280, description="Start of the text, for display.")
    tickers: list[Ticker]
    # Added within schema version 1 (optional, empty by default, so records written before
    # it still validate), like ``model``.
    markets: list[Label] = Field(
        default_factory=list, description="Indices, exchanges and markets the text names, "
        "under canonical keys (e.g. 'Dow Jones', 'S&P 500', 'FTSE 100').")
    event_time: UtcDatetime
    sentiment: Prediction[SentimentLabel]
    topic: Prediction[Label]
    scorer: str = Field(description="Scorer identity, e.g. 'onnx-cpu:student-int8'.")
    # Added within schema version 1 (an optional field, so records written before it
    # still validate); every worker since fills it, also across a model switch.
    model: ModelRef | None = Field(
        None, description="The model that scored this event (bundle id, name, variant).")
    origin: Origin
    stamps: Stamps
