"""Where the worker finds its bundle: the configured directory, else the cached full or
quick build (``streamer.training.quick`` builds the quick one when none exists)."""

from __future__ import annotations

from pathlib import Path

from streamer.bundle.errors import BundleError
from streamer.bundle.load import load_bundle
from streamer.settings import Settings

DEFAULT_BUNDLE = "default"
FULL_BUNDLE = "full"  # where `streamer models build --profile full` writes by default


def default_bundle_path(settings: Settings) -> Path:
    """``STREAMER_BUNDLE_DIR`` when set; else the full build's bundle once it is complete
    (``<cache>/bundles/full``: the accurate one); else ``<cache>/bundles/default``."""
    if settings.scoring.bundle_dir is not None:
        return settings.scoring.bundle_dir
    full = settings.paths.bundles / FULL_BUNDLE
    return full if is_complete_bundle(full) else settings.paths.bundles / DEFAULT_BUNDLE


def is_complete_bundle(path: Path) -> bool:
    """A bundle whose manifest and files pass the cheap checks (no hashing)."""
    try:
        load_bundle(path, verify=())
    except BundleError:
        return False
    return True
