"""Write JSON Schema files that subscribers can validate records against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from streamer.schemas import ChatMessage, DeadLetter, NewsItem, ScoredEvent
from streamer.schemas.alerts import AlertRecord


def wire_models() -> dict[str, type[BaseModel]]:
    return {
        "news": NewsItem,
        "chat": ChatMessage,
        "scored": ScoredEvent,
        "dead-letter": DeadLetter,
        "alert": AlertRecord,
    }


def _named_by_title(schema: dict[str, Any]) -> dict[str, Any]:
    """Definitions keyed by their titles where pydantic keys them by a generic's
    parameters (``Prediction_Literal__negative...`` -> ``SentimentPrediction``)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    titles = [d.get("title") for d in defs.values()]
    renames = {key: d["title"] for key, d in defs.items()
               if isinstance(d.get("title"), str) and d["title"].isidentifier()
               and d["title"] != key and titles.count(d["title"]) == 1
               and d["title"] not in defs}
    text = json.dumps(schema)
    for old, new in renames.items():
        text = text.replace(f'"#/$defs/{old}"', f'"#/$defs/{new}"')
    renamed: dict[str, Any] = json.loads(text)
    if renames:
        renamed["$defs"] = {renames.get(k, k): v for k, v in renamed["$defs"].items()}
    return renamed


def export_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in wire_models().items():
        schema = _named_by_title(model.model_json_schema(mode="serialization"))
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{name}.schema.json"
        path = out / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", "utf-8")
        written.append(path)
    return written
