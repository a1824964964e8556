"""The exported JSON Schemas, checked with a real validator (jsonschema): label values are
enums, and records from a newer producer (an extra field) still validate."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from streamer.schemas import ScoredEvent
from streamer.schemas.events import ModelRef, Origin, Prediction, Stamps
from streamer.schemas.export import export_schemas
from streamer.score.base import ScorerError, check_sentiment_labels


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("schemas")
    return {p.name.removesuffix(".schema.json"): json.loads(p.read_text())
            for p in export_schemas(out)}


def scored(sentiment: str = "negative") -> dict[str, Any]:
    event = ScoredEvent(
        id="n1", kind="news", source="wire", snippet="Exxon cuts output", tickers=["XOM"],
        event_time=datetime(2026, 1, 2, tzinfo=UTC),
        sentiment=Prediction(label="negative", probs={"negative": 0.9, "neutral": 0.05,
                                                      "positive": 0.05}),
        topic=Prediction(label="Energy | Oil", probs={"Energy | Oil": 1.0}),
        scorer="test", model=ModelRef(bundle_id="0123456789abcdef", bundle="full",
                                      variant="student3-int8"),
        origin=Origin(topic="news", partition=0, offset=1), stamps=Stamps(),
    )
    value: dict[str, Any] = json.loads(event.model_dump_json())
    value["sentiment"]["label"] = sentiment
    return value


def errors(schema: dict[str, Any], value: object) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [e.message for e in validator.iter_errors(value)]


def test_a_scored_record_validates(schemas: dict[str, dict[str, Any]]) -> None:
    assert errors(schemas["scored"], scored()) == []


def test_a_sentiment_label_outside_the_enum_does_not_validate(
    schemas: dict[str, dict[str, Any]],
) -> None:
    assert errors(schemas["scored"], scored("bullish"))
    bad_probs = scored()
    bad_probs["sentiment"]["probs"]["bullish"] = 0.1
    assert errors(schemas["scored"], bad_probs)


def test_the_sentiment_enum_is_named_in_the_schema(schemas: dict[str, dict[str, Any]]) -> None:
    label = schemas["scored"]["$defs"]["SentimentPrediction"]["properties"]["label"]
    assert label["enum"] == ["negative", "neutral", "positive"]


def test_the_model_refuses_a_sentiment_label_outside_the_enum() -> None:
    with pytest.raises(ValueError, match="bullish"):
        ScoredEvent.model_validate(scored("bullish"))


@pytest.mark.parametrize("name", ["news", "chat", "scored", "dead-letter", "alert"])
def test_a_record_with_a_field_from_a_newer_producer_still_validates(
    schemas: dict[str, dict[str, Any]], name: str,
) -> None:
    assert schemas[name].get("additionalProperties", True) is not False


def test_enum_fields_of_the_other_records_are_enums(schemas: dict[str, dict[str, Any]]) -> None:
    assert "bullish" not in schemas["dead-letter"]["properties"]["reason"]["enum"]
    assert schemas["alert"]["properties"]["severity"]["enum"] == ["warning", "major",
                                                                  "critical"]


def test_a_scorer_with_other_sentiment_classes_is_refused_at_load() -> None:
    check_sentiment_labels("nb", ("negative", "neutral", "positive"))
    with pytest.raises(ScorerError, match="bullish"):
        check_sentiment_labels("nb", ("bearish", "bullish", "neutral"))
