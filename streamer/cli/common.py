"""Shared CLI helpers: settings with command-line overrides, a console, errors for people."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.logging import RichHandler

from streamer.settings import Settings, get_settings

T = TypeVar("T")
# Piped output (the main job's log, CI) would otherwise wrap tables at 80 columns.
console = Console(width=None if Console().is_terminal else 120)


def settings_with(**overrides: Any) -> Settings:
    base = get_settings()
    updates = {k: v for k, v in overrides.items() if v is not None}
    return base.replace(**updates) if updates else base


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)]
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    from streamer.kafka.security import KafkaSecurityError
    from streamer.produce.sender import ProduceGaveUp

    # aiokafka logs every failed request to a stalled broker at ERROR while it retries
    # it; the command's own result, or its one-line error, says what matters to a person.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(coro)
    # A refused password or certificate, or a broker stalled past the produce deadline:
    # the message says what happened and what to do; one line, no trace.
    except (KafkaSecurityError, ProduceGaveUp) as exc:
        fail(str(exc))
        raise  # unreachable: fail() exits


def fail(message: str, hint: str | None = None, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}")
    if hint:
        console.print(f"[yellow]what to do:[/] {hint}")
    raise click.exceptions.Exit(code)


def number_list(value: str, kind: Callable[[str], T], option: str) -> list[T]:
    """``"1,8,32"`` -> ``[1, 8, 32]``; a clear error naming ``option`` otherwise."""
    try:
        return [kind(x) for x in value.split(",") if x.strip()]
    except ValueError:
        fail(f"{option} {value!r}: give numbers separated by commas")
        raise  # unreachable: fail() exits
