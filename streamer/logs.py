"""Log lines for people (text) or for a log pipeline (``STREAMER_LOG_FORMAT=json``).

JSON: one object a line with stable keys: ``ts`` (UTC, ISO 8601 with milliseconds),
``level``, ``logger``, ``message`` (the formatted message), ``worker`` where the process
knows its worker id, and ``exc_info`` (the formatted traceback) when one is logged.
Nothing here runs on import; the worker and the CLI call ``configure_logging`` or
``use_json`` when they set up logging.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
KEYS = ("ts", "level", "logger", "message", "worker", "exc_info")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def __init__(self, worker: str | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            out["worker"] = self.worker
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc_info"] = record.exc_text
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def use_json(logger: logging.Logger | None = None, worker: str | None = None) -> None:
    """Format every handler of ``logger`` (default: the root logger) as JSON: for a
    framework that installs its own handlers (Faust's worker)."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(JsonFormatter(worker))


def configure_logging(level: str | int, log_format: LogFormat, *,
                      text_handler: logging.Handler | None = None,
                      text_format: str = "%(message)s", worker: str | None = None) -> None:
    """Set up the root logger: ``text_handler`` (default: stderr) with ``text_format``,
    or, for json, one stderr handler writing JsonFormatter lines. Replaces the root
    logger's handlers, so calling it again switches formats."""
    if log_format == "json":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter(worker))
    else:
        handler = text_handler or logging.StreamHandler(sys.stderr)
        if handler.formatter is None:
            handler.setFormatter(logging.Formatter(text_format))
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level,
                        handlers=[handler], force=True)
