"""Write JSON Schema files that subscribers can validate records against."""

from __future__ import annotations

import json
from pathlib import Path

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


def export_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in wire_models().items():
        schema = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{name}.schema.json"
        path = out / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", "utf-8")
        written.append(path)
    return written
