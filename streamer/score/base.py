"""The one interface every scorer implements (baseline, ONNX Runtime, PyTorch CUDA)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from streamer.schemas.events import Kind as Source
from streamer.schemas.events import ModelRef
from streamer.schemas.types import SENTIMENT_LABELS


class ScorerError(RuntimeError):
    """A scorer could not be built or loaded; the message says what to do."""


def check_sentiment_labels(name: str, labels: Sequence[str]) -> None:
    """Refuse a scorer whose sentiment head has a class the wire schema does not name
    (every scored event would fail validation); raise ScorerError saying so."""
    unknown = [label for label in labels if label not in SENTIMENT_LABELS]
    if unknown:
        raise ScorerError(
            f"scorer {name} has sentiment labels {unknown} outside the wire schema's "
            f"{list(SENTIMENT_LABELS)}: map the sentiment data's labels onto those")


_WARMUP_TEXTS = (
    "$AAPL beats estimates, shares jump after hours",
    "Central bank holds rates steady; currency slips against the dollar as traders "
    "reassess the outlook for exports and oil prices.",
)


def warmup_batches(lengths: Sequence[int]) -> Iterator[tuple[list[str], list[Source]]]:
    """One small batch per padded length (a text of about that many tokens plus two
    realistic ones), so every shape a scorer will see is prepared before real traffic."""
    for length in lengths:
        text = " ".join(["market"] * max(1, length - 2))
        yield [text, *_WARMUP_TEXTS], ["news", "chat", "news"]


@dataclass(frozen=True)
class BatchScores:
    """Probabilities for one batch, rows in the order of the input texts.

    ``sentiment`` has shape (n, len(sentiment_labels)); ``topic`` (n, len(topic_labels)).
    ``tokenize_s`` and ``infer_s`` split the batch's wall time for latency accounting.
    """

    sentiment_labels: tuple[str, ...]
    topic_labels: tuple[str, ...]
    sentiment: np.ndarray
    topic: np.ndarray
    tokenize_s: float = 0.0
    infer_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.sentiment.shape[0]
        if self.topic.shape[0] != n:
            raise ValueError("sentiment and topic rows differ")
        if self.sentiment.shape[1] != len(self.sentiment_labels):
            raise ValueError("sentiment columns do not match its labels")
        if self.topic.shape[1] != len(self.topic_labels):
            raise ValueError("topic columns do not match its labels")


@runtime_checkable
class Scorer(Protocol):
    """Thread-safe, synchronous scorer; the worker calls it from an executor thread."""

    @property
    def name(self) -> str:
        """Short identity for logs and metrics, e.g. 'onnx-cpu:student-int8'."""
        ...

    @property
    def model(self) -> ModelRef:
        """The model it serves (bundle id, name, variant); every scored event names it."""
        ...

    @property
    def sentiment_labels(self) -> tuple[str, ...]: ...

    @property
    def topic_labels(self) -> tuple[str, ...]: ...

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        """Score ``texts``; ``sources[i]`` picks the truncation length for ``texts[i]``."""
        ...

    def warmup(self) -> None:
        """Run a few batches so the first real message is not slow."""
        ...
