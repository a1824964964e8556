"""Which bundle a worker serves, in order of precedence:

1. ``STREAMER_BUNDLE_DIR``: pinned (no automatic upgrade, no promotion);
2. the bundle ``streamer models promote`` made live (``<bundles>/live.json``);
3. the full build's bundle, once complete (``<bundles>/full``: the accurate one);
4. the quick default (``<bundles>/default``; ``streamer.training.quick`` builds it when
   none exists).

Workers ask again every ``STREAMER_MODEL_WATCH_S`` and switch when the answer names
another model (``streamer.score.watch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streamer.bundle.errors import BundleError
from streamer.bundle.live import read_pointer
from streamer.bundle.load import load_bundle
from streamer.settings import Settings

DEFAULT_BUNDLE = "default"
FULL_BUNDLE = "full"  # where `streamer models build --profile full` writes by default
# Written last by a build (streamer.training.build): a directory without it is still being
# built, and its manifest may yet change (the build writes a provisional one first).
COMPLETE_MARKER = "BUILD_COMPLETE"

Reason = Literal["pinned", "promoted", "full", "default"]


@dataclass(frozen=True)
class BundleChoice:
    path: Path
    reason: Reason
    note: str | None = None  # why a promoted bundle was passed over

    def describe(self) -> str:
        how = {"pinned": "pinned by STREAMER_BUNDLE_DIR", "promoted": "promoted",
               "full": "automatic: the full build", "default": "automatic: the quick default"}
        return f"{self.path} ({how[self.reason]})"


def choose_bundle(settings: Settings) -> BundleChoice:
    """The bundle that should be live now. A pointer that cannot be read is a
    ``BundleError``; a promoted bundle that is gone or incomplete is passed over (with a
    note) for the automatic choice, so a worker keeps serving."""
    if settings.scoring.bundle_dir is not None:
        return BundleChoice(settings.scoring.bundle_dir, "pinned")
    note = None
    pointer = read_pointer(settings.paths.bundles)
    if pointer is not None and pointer.current.path is not None:
        promoted = pointer.current.path
        if is_complete_bundle(promoted):
            return BundleChoice(promoted, "promoted")
        note = (f"the promoted bundle {promoted} is not a complete bundle any more; "
                "serving the automatic choice (promote another, or `streamer models rollback`)")
    auto = automatic_bundle(settings)
    return BundleChoice(auto, "full" if auto.name == FULL_BUNDLE else "default", note)


def automatic_bundle(settings: Settings) -> Path:
    """The full build's bundle once complete, else the quick default's directory."""
    full = settings.paths.bundles / FULL_BUNDLE
    return full if is_complete_bundle(full) else settings.paths.bundles / DEFAULT_BUNDLE


def default_bundle_path(settings: Settings) -> Path:
    """The directory of :func:`choose_bundle`'s choice."""
    return choose_bundle(settings).path


def is_complete_bundle(path: Path) -> bool:
    """A finished build whose manifest and files pass the cheap checks (no hashing)."""
    if not (path / COMPLETE_MARKER).is_file():
        return False
    try:
        load_bundle(path, verify=())
    except BundleError:
        return False
    return True


def build_lock_path(path: Path) -> Path:
    """The lock file a build of ``path`` holds, so that two never write one bundle."""
    return path.parent / f".{path.name}.lock"
