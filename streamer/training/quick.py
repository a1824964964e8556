"""The QUICK default bundle: what a fresh machine builds on first run when none exists.

A 2-layer model (the first and last blocks of the base) fine-tuned for one epoch on both
heads, exported, fused and quantized to INT8: minutes on a 2-core CPU. Measured against
frozen 6-layer embeddings + logistic-regression heads on the same split, it wins on both
heads and serves a third of the layers; the figures are in ``build.QUICK_CHOICE``, on the
bundle's card and in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import fcntl
import logging
import time
from pathlib import Path

from streamer.bundle.load import load_bundle
from streamer.bundle.locate import build_lock_path, default_bundle_path, is_complete_bundle
from streamer.score.base import ScorerError
from streamer.settings import Settings
from streamer.training.data import DataMissing, require_labelled_data
from streamer.training.progress import Reporter

log = logging.getLogger(__name__)
def ensure_default_bundle(
    settings: Settings,
    data_dir: Path | None = None,
    reporter: Reporter | None = None,
    threads: int = 2,
) -> Path:
    """A usable bundle directory: the configured or cached one, or a freshly built quick one.

    An explicitly configured ``STREAMER_BUNDLE_DIR`` is never built over: a broken one is an error.
    Concurrent workers on one machine wait on a lock file instead of building twice.
    """
    path = default_bundle_path(settings)
    if settings.scoring.bundle_dir is not None:
        load_bundle(path, verify=())  # raises BundleError naming the problem
        log.info("model bundle: %s (configured)", path)
        return path
    if is_complete_bundle(path):
        log.info("model bundle: %s (cached)", path)
        _warn_if_stale(path, data_dir or settings.scoring.labelled_data_dir)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with build_lock_path(path).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it right now
        if is_complete_bundle(path):
            log.info("model bundle: %s (built by another process)", path)
            return path
        data = data_dir or settings.scoring.labelled_data_dir
        try:  # before anything slow: torch, the encoder's download, minutes of training
            require_labelled_data(data)
        except DataMissing as exc:
            raise ScorerError(str(exc)) from None
        try:
            from streamer.training.build import build_bundle, profile_config
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ScorerError(
                f"no model bundle at {path} and building one needs the train extra "
                f"({exc.name} is missing): pip install 'streamer[train]', or set "
                "STREAMER_BUNDLE_DIR to a built bundle, or STREAMER_SCORER=baseline"
            ) from exc
        rep = reporter or Reporter()
        rep.log(
            f"[bold]no model bundle yet:[/] building the quick default bundle at {path} "
            "(one time, about 5-10 minutes on a 2-core CPU)"
        )
        start = time.perf_counter()
        cfg = profile_config(
            "quick",
            data,
            path,
            threads=threads,
            command="streamer (first run: quick default bundle)",
        )
        try:
            build_bundle(cfg, rep)
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ScorerError(
                f"building the default bundle needs the train extra ({exc.name} is missing): "
                "pip install 'streamer[train]'"
            ) from exc
        rep.log(f"quick default bundle built in {time.perf_counter() - start:.0f}s: {path}")
        return path


def _warn_if_stale(path: Path, data_dir: Path) -> None:
    """Say so when a cached bundle learnt from other data sets than a build would use now
    (e.g. one built before the topic head learnt the TFN taxonomy): it still serves, with
    its own labels, until a rebuild, which workers then pick up by themselves."""
    from streamer.training.data import default_specs

    trained = {d.name for d in load_bundle(path, verify=()).manifest.datasets}
    current = {s.name for s in default_specs(data_dir)}
    if trained != current:
        log.warning(
            "model bundle %s learnt from %s, but this version trains on %s: rebuild it with "
            "`streamer models build --profile quick --out %s` (running workers switch to it "
            "when it is complete)", path, sorted(trained), sorted(current), path,
        )


def build_if_missing(settings: Settings) -> Path:
    """``ensure_default_bundle`` with the settings' build threads: what a worker's first
    start passes to ``streamer.score.select.load_scorer``."""
    return ensure_default_bundle(settings, threads=settings.scoring.bundle_build_threads)
