"""Read JSONL or CSV input files as Kafka messages, optionally re-basing event times."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson

from streamer.produce.sender import Outgoing

TIME_FIELDS = ("published_at", "sent_at")
_LIST_FIELDS = ("tickers",)


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def read_records(path: Path) -> Iterator[dict[str, object] | bytes]:
    """JSONL lines as dicts (a line that is not a JSON object is kept as raw bytes,
    so malformed input can be replayed to exercise the dead-letter path); CSV rows as dicts."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                rec: dict[str, object] = {k: v for k, v in row.items() if v not in (None, "")}
                for f in _LIST_FIELDS:
                    if isinstance(rec.get(f), str):
                        rec[f] = [t for t in str(rec[f]).replace(";", " ").split() if t]
                yield rec
        return
    with path.open("rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield line
                continue
            yield obj if isinstance(obj, dict) else line


def to_messages(
    path: Path, topic: str, *, rebase: bool, key_field: str = "id"
) -> Iterator[Outgoing]:
    """Kafka messages from ``path``; with ``rebase`` the first event time becomes now."""
    shift = None
    for rec in read_records(path):
        if isinstance(rec, bytes):
            yield Outgoing(topic, None, rec)
            continue
        if rebase:
            for f in TIME_FIELDS:
                t = _parse_time(rec.get(f))
                if t is not None:
                    if shift is None:
                        shift = datetime.now(UTC) - t
                    rec[f] = (t + shift).isoformat()
        key = rec.get(key_field)
        yield Outgoing(topic, str(key).encode() if key is not None else None, orjson.dumps(rec))


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        n = sum(1 for line in fh if line.strip())
    return n - 1 if path.suffix.lower() == ".csv" else n
