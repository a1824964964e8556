"""Progress bars for long model steps (rich), or silence for tests and library use."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Bar:
    """One bar: ``advance`` by units done; ``note`` shows a short status (e.g. the loss)."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: float = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    def note(self, text: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, note=text)


class PlainBar(Bar):
    """For logs and CI (no terminal): one line per tenth of the work instead of a live bar."""

    def __init__(self, reporter: Reporter, description: str, total: float | None) -> None:
        super().__init__(None, None)
        self._reporter = reporter
        self._description = description
        self._total = total
        self._done = 0.0
        self._next = 0.1
        self._start = time.perf_counter()
        self._note = ""

    def advance(self, n: float = 1) -> None:
        self._done += n
        if not self._total:
            return
        frac = self._done / self._total
        if frac + 1e-9 >= self._next:
            elapsed = time.perf_counter() - self._start
            eta = elapsed * (1 - frac) / max(frac, 1e-9)
            self._reporter.log(
                f"  {self._description}: {100 * frac:.0f}% ({self._done:.0f}/{self._total:.0f}) "
                f"{elapsed:.0f}s elapsed, eta {eta:.0f}s {self._note}".rstrip()
            )
            while self._next <= frac + 1e-9:
                self._next += 0.1

    def note(self, text: str) -> None:
        self._note = text


class Reporter:
    """Prints step messages and draws bars; ``enabled=False`` makes it silent."""

    def __init__(self, enabled: bool = True, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)

    @contextmanager
    def bar(self, description: str, total: float | None) -> Iterator[Bar]:
        if not self.enabled:
            yield Bar(None, None)
            return
        if not self.console.is_terminal:
            start = time.perf_counter()
            yield PlainBar(self, description, total)
            self.log(f"  {description}: {time.perf_counter() - start:.1f}s")
            return
        columns: list[Any] = [
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[note]}"),
        ]
        start = time.perf_counter()
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(description, total=total, note="")
            yield Bar(progress, task)
        self.log(f"  {description}: {time.perf_counter() - start:.1f}s")


SILENT = Reporter(enabled=False)


@contextmanager
def library_bars_off() -> Iterator[None]:
    """transformers' and huggingface_hub's own tqdm bars off while a build runs, restored
    after: they draw with carriage returns, which a log (the main job's, a background
    build's) keeps as junk lines; the build's Reporter says what is happening instead."""
    from huggingface_hub.utils import are_progress_bars_disabled
    from huggingface_hub.utils import disable_progress_bars as hub_off
    from huggingface_hub.utils import enable_progress_bars as hub_on
    from transformers.utils import logging as hf_logging

    hf_was_on = hf_logging.is_progress_bar_enabled()
    hub_was_on = not are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    hub_off()
    try:
        yield
    finally:
        if hf_was_on:
            hf_logging.enable_progress_bar()
        if hub_was_on:
            hub_on()
