"""Labels for ``streamer eval-alerts``: synthetic spikes or real news episodes, and reviews.

Two label files, one reader (:func:`read_labels`; the file's shape decides):

* ``spikes.json`` (``streamer eval-stream``, ``streamer demo --out``): a JSON list of
  injected spikes, ``{"scope", "key", "start", "end", "messages"}``;
* an **episodes** file of real news, labelled by a person from the stream's headlines:
  ``{"stream", "labelled_by", "episodes": [{"name", "scope", "key", "start", "end",
  "description", "stories_in_scope", "negative_stories", "evidence": [{"id",
  "published_at", "headline"}]}], "rejected": [...]}``.

A **reviews** file (:func:`read_reviews`) records a person's reading of alerts that fell
outside every labelled episode: ``{"<episode_id>": {"verdict": "negative news" | "not
negative", "note": "..."}}``. A tool cannot tell whether a reader would call an alert's
evidence negative news; a person can, once, and the file keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from streamer.schemas.types import UtcDatetime

LabelKind = Literal["synthetic", "real"]
Verdict = Literal["negative news", "not negative"]


class LabelsError(ValueError):
    """A label or review file that cannot be read; the message says what is wrong."""


class SpanLabel(BaseModel):
    """One labelled stretch of one scope key: a synthetic spike or a real episode."""

    scope: str = Field(description="Scope kind: topic, ticker, market, stream, ...")
    key: str
    start: UtcDatetime
    end: UtcDatetime
    messages: int = Field(0, ge=0, description="Messages in the span (spikes: injected).")
    name: str | None = None
    first_story: UtcDatetime | None = Field(
        None, description="Episodes: the earliest evidence story (delays count from it).")
    story_ids: frozenset[str] = Field(
        frozenset(), description="Episodes: ids of the stories the labeller cited.")

    @model_validator(mode="after")
    def _ordered(self) -> SpanLabel:
        if self.end < self.start:
            raise ValueError(f"{self.scope} {self.key!r}: end {self.end} is before start "
                             f"{self.start}")
        return self

    @property
    def title(self) -> str:
        return self.name or f"{self.scope} {self.key}"


# --- the episodes file ----------------------------------------------------------------
class EpisodeEvidence(BaseModel):
    """A story the labeller cites for an episode."""

    id: str
    published_at: UtcDatetime
    headline: str


class Episode(BaseModel):
    """A real news episode: negative news on one scope key between start and end."""

    name: str
    scope: str
    key: str
    start: UtcDatetime
    end: UtcDatetime
    description: str = ""
    stories_in_scope: int | None = Field(None, ge=0)
    negative_stories: int | None = Field(None, ge=0)
    evidence: list[EpisodeEvidence] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Episode:
        if self.end <= self.start:
            raise ValueError(f"episode {self.name!r}: end {self.end} is not after start "
                             f"{self.start}")
        return self

    @property
    def first_story(self) -> datetime:
        """The earliest cited story inside the episode, else its start."""
        inside = [e.published_at for e in self.evidence
                  if self.start <= e.published_at <= self.end]
        return min(inside, default=self.start)

    def as_span(self) -> SpanLabel:
        return SpanLabel(scope=self.scope, key=self.key, start=self.start, end=self.end,
                         messages=self.stories_in_scope or 0, name=self.name,
                         first_story=self.first_story,
                         story_ids=frozenset(e.id for e in self.evidence))


class EpisodesFile(BaseModel):
    """A file of labelled real news episodes (tests/data/reuters-1987/episodes.json)."""

    model_config = ConfigDict(extra="allow")  # the labeller may keep notes beside these

    stream: str | None = None
    labelled_by: str | None = None
    episodes: list[Episode] = Field(default_factory=list)
    # Candidates the labeller looked at and turned down, with why; shown, never scored.
    rejected: list[Any] = Field(default_factory=list)


_SPIKES = TypeAdapter(list[SpanLabel])


@dataclass(frozen=True)
class LabelSet:
    """What a label file holds: its kind (the shape decided it) and its spans."""

    kind: LabelKind
    spans: list[SpanLabel]
    path: Path | None = None
    rejected: int = 0  # episodes file: candidates the labeller rejected
    notes: dict[str, Any] = field(default_factory=dict)  # episodes file: stream, labelled_by

    @property
    def empty(self) -> bool:
        return not self.spans


def read_labels(path: Path) -> LabelSet:
    """Spikes (a JSON list) or episodes (an object with ``episodes``), by the file's shape."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise LabelsError(f"{path}: not a readable JSON file ({exc})") from exc
    try:
        if isinstance(data, list):
            return LabelSet("synthetic", _SPIKES.validate_python(data), path)
        if isinstance(data, dict) and "episodes" in data:
            doc = EpisodesFile.model_validate(data)
            return LabelSet("real", [e.as_span() for e in doc.episodes], path,
                            rejected=len(doc.rejected),
                            notes={"stream": doc.stream, "labelled_by": doc.labelled_by})
    except ValidationError as exc:
        raise LabelsError(f"{path}: {_first_error(exc)}") from exc
    raise LabelsError(
        f"{path}: neither a spikes file (a JSON list of {{scope, key, start, end, messages}}) "
        "nor an episodes file (an object with an 'episodes' list)")


# --- reviews ------------------------------------------------------------------------------
class Review(BaseModel):
    """A person's reading of one alert's evidence."""

    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    note: str = ""


_REVIEWS = TypeAdapter(dict[str, Review])


def read_reviews(path: Path) -> dict[str, Review]:
    """``{episode_id: {"verdict": "negative news" | "not negative", "note": ...}}``."""
    try:
        return _REVIEWS.validate_json(path.read_bytes())
    except OSError as exc:
        raise LabelsError(f"{path}: cannot read it ({exc})") from exc
    except ValidationError as exc:
        raise LabelsError(
            f"{path}: {_first_error(exc)} (expected {{\"<episode_id>\": {{\"verdict\": "
            "\"negative news\" | \"not negative\", \"note\": \"...\"}}}})") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where or 'file'}: {err.get('msg', 'invalid')}{more}"
