"""Model upgrades without a restart: notice a newer bundle, load it beside the live one,
switch between batches, free the old one.

Every ``STREAMER_MODEL_WATCH_S`` the watcher asks :func:`streamer.bundle.locate.choose_bundle`
which bundle should be live (promoted, else the full build once complete, else the quick
default). When that bundle's id differs from the live model's, a scorer for it is built
and warmed on a thread of the watcher's own, at a lower CPU priority so that the live
model keeps the cores, then swapped into the scoring pool on the event loop: a batch
already scoring finishes on the old model (its records name it) and the next batch starts
on the new one. Nothing is replayed or skipped: batches, acks and commits go on as before.
The old scorer is dropped; its memory (ONNX Runtime sessions) goes with the last batch
that used it, which ``streamer_models_retired_alive`` shows.

A bundle that does not load is logged with the reason, the live model stays, and it is
tried again only once it changes (its id, or any of its files). A bundle
pinned by ``STREAMER_BUNDLE_DIR`` and the Naive Bayes baseline (``STREAMER_SCORER=baseline``)
are never switched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from streamer.bundle.errors import BundleError
from streamer.bundle.load import load_bundle
from streamer.bundle.locate import COMPLETE_MARKER, BundleChoice, choose_bundle, is_complete_bundle
from streamer.metrics import Metrics
from streamer.score.base import Scorer, check_sentiment_labels
from streamer.score.pool import ScoringPool
from streamer.settings import Settings

log = logging.getLogger(__name__)

# The loader thread's nice value: below the scoring threads, yet not starved on a busy
# machine (19 would leave a 2-core worker at full load warming the model for minutes).
LOADER_NICE = 10

Loader = Callable[[Path], Scorer]


@dataclass(frozen=True)
class Found:
    """The bundle that should be live, as last seen on disk."""

    choice: BundleChoice
    bundle_id: str
    # Inode, size and modification time of each of its files: a repaired copy is new.
    stamp: tuple[tuple[int, int, int], ...]

    @property
    def key(self) -> tuple[object, ...]:
        return (self.choice.path, self.bundle_id, self.stamp)


def _lower_priority() -> None:
    # Linux keeps a nice value per thread: this lowers the loader thread alone.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICE)


class ModelWatcher:
    """Polls the choice of bundle and swaps a newer model into ``pool``.

    ``load`` builds an unwarmed scorer for a bundle directory (the worker passes
    :func:`streamer.score.select.bundle_scorer`); it runs on the watcher's thread.
    """

    def __init__(self, settings: Settings, pool: ScoringPool, load: Loader,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.load = load
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="model-load",
                                            initializer=_lower_priority)
        self._failed: tuple[object, ...] | None = None  # the last bundle that did not load
        self._said: str | None = None  # the last note or error logged, said once

    @property
    def enabled(self) -> bool:
        scoring = self.settings.scoring
        return (scoring.model_watch_s > 0 and scoring.bundle_dir is None
                and scoring.scorer != "baseline")

    async def run(self) -> None:
        """Check every ``STREAMER_MODEL_WATCH_S`` until cancelled; never raises."""
        while True:
            await asyncio.sleep(self.settings.scoring.model_watch_s)
            try:
                await self.check()
            except Exception:  # an upgrade must never stop the stream
                log.exception("model watch: unexpected error; the live model stays")

    async def check(self) -> bool:
        """One poll: True when a new model was swapped in."""
        loop = asyncio.get_running_loop()
        try:  # reads files: off the event loop
            found = await loop.run_in_executor(self._executor, self._find)
        except BundleError as exc:
            self._say(f"model watch: {exc}; the live model stays")
            return False
        live = self.pool.scorer
        if found is None or found.bundle_id == live.model.bundle_id or found.key == self._failed:
            return False
        log.info("model upgrade: loading %s (id %s) beside the live %s",
                 found.choice.describe(), found.bundle_id, live.model.short())
        del live  # held no longer than needed: the old model is freed after the swap
        try:
            new = await loop.run_in_executor(self._executor, self._load_warm, found.choice.path)
        except Exception as exc:  # a bad bundle: any error, the live model stays
            self._failed = found.key
            if self.metrics is not None:
                self.metrics.model_swaps.labels("failed").inc()
            log.warning("model upgrade failed: cannot load %s: %s; %s stays live, and the "
                        "bundle is tried again once it changes", found.choice.describe(), exc,
                        self.pool.scorer.model.short())
            return False
        self._failed = None
        old = self.pool.swap(new)
        if self.metrics is not None:
            self.metrics.show_live(new.name, new.model, (old.name, old.model))
            self.metrics.model_swaps.labels("swapped").inc()
        log.info("model switched: %s -> %s (%s)", old.model.short(), new.model.short(),
                 found.choice.describe())
        self._retire(old)
        return True

    def _find(self) -> Found | None:
        choice = choose_bundle(self.settings)
        if choice.note is not None:
            self._say(f"model watch: {choice.note}")
        else:
            self._said = None  # all well again: the next problem is logged afresh
        if not is_complete_bundle(choice.path):
            return None  # nothing to switch to (the quick default is being built)
        bundle = load_bundle(choice.path, verify=())
        files = [COMPLETE_MARKER, bundle.manifest.tokenizer,
                 *(v.file for v in bundle.manifest.variants)]
        stats = [(choice.path / f).stat() for f in files]
        return Found(choice, bundle.id,
                     tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in stats))

    def _load_warm(self, path: Path) -> Scorer:
        scorer = self.load(path)
        check_sentiment_labels(scorer.name, scorer.sentiment_labels)
        scorer.warmup()
        return scorer

    def _say(self, message: str) -> None:
        if message != self._said:
            self._said = message
            log.warning("%s", message)

    def _retire(self, old: Scorer) -> None:
        """Count ``old`` until it is freed (a batch in flight may still hold it)."""
        name = old.model.short()
        try:
            done = weakref.finalize(old, self._freed, name)
        except TypeError:  # a scorer without weak references: nothing to watch
            return
        done.atexit = False
        if self.metrics is not None:
            self.metrics.models_retired_alive.inc()

    def _freed(self, name: str) -> None:
        if self.metrics is not None:
            self.metrics.models_retired_alive.dec()
        log.info("model %s freed", name)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
