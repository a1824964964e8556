"""The operator's choice of the live bundle: ``streamer models promote`` and ``rollback``.

``<bundles>/live.json`` holds the promoted bundle and, newest last, what was live before
each promotion, so that ``rollback`` undoes them one at a time. An entry without a path
stands for the automatic choice (the full build once complete, else the quick default):
rolling back the first promotion returns to it, auto-upgrade included. The file is
written atomically under a lock; workers read it on each poll (``STREAMER_MODEL_WATCH_S``).
``STREAMER_BUNDLE_DIR`` still pins a worker to one bundle, pointer or not.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from streamer.atomic import file_lock, write_text
from streamer.bundle.errors import BundleError

POINTER_FILE = "live.json"
HISTORY_KEPT = 20  # rollbacks available; older entries are dropped


def _now() -> datetime:
    return datetime.now(UTC)


class LiveEntry(BaseModel):
    """One choice of the live bundle."""

    path: Path | None = Field(
        None, description="The bundle directory; none: the automatic choice.")
    bundle_id: str | None = Field(
        None, description="The bundle id it had when chosen (what was live, for display).")
    at: datetime = Field(default_factory=_now)

    def describe(self) -> str:
        where = str(self.path) if self.path is not None else "the automatic choice"
        return where + (f" (id {self.bundle_id})" if self.bundle_id else "")


class LivePointer(BaseModel):
    format_version: Literal[1] = 1
    current: LiveEntry
    previous: list[LiveEntry] = Field(default_factory=list, description="Newest last.")


def pointer_path(bundles: Path) -> Path:
    return bundles / POINTER_FILE


def read_pointer(bundles: Path) -> LivePointer | None:
    """The pointer, or None when nothing was ever promoted; a damaged file is a
    ``BundleError`` (it is only ever written whole, so someone edited it)."""
    path = pointer_path(bundles)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BundleError(f"cannot read the live-bundle pointer {path}: {exc}") from exc
    try:
        return LivePointer.model_validate_json(text)
    except ValidationError as exc:
        raise BundleError(
            f"the live-bundle pointer {path} is not valid ({exc.errors()[0]['msg']}); "
            "promote a bundle again (`streamer models promote BUNDLE`) or delete the file "
            "to return to the automatic choice"
        ) from exc


def _locked(bundles: Path) -> AbstractContextManager[None]:
    """One promote or rollback at a time: each reads, changes and writes the pointer."""
    return file_lock(bundles / f".{POINTER_FILE}.lock")


def promote(bundles: Path, path: Path, bundle_id: str, live: LiveEntry) -> LivePointer:
    """Make ``path`` the live bundle; ``live`` is what is live now, which ``rollback``
    returns to (a promoted bundle that is gone was passed over for the automatic choice:
    ``live`` is then that)."""
    with _locked(bundles):
        pointer = read_pointer(bundles)
        history = [*(pointer.previous if pointer is not None else []), live]
        new = LivePointer(current=LiveEntry(path=path.resolve(), bundle_id=bundle_id),
                          previous=history[-HISTORY_KEPT:])
        write_text(pointer_path(bundles), new.model_dump_json(indent=2) + "\n")
        return new


def rollback_target(bundles: Path) -> LiveEntry:
    """What ``rollback`` would return to; ``BundleError`` when nothing was promoted."""
    pointer = read_pointer(bundles)
    if pointer is None or not pointer.previous:
        raise BundleError(
            f"nothing to roll back to: no promotion is recorded in {pointer_path(bundles)}")
    return pointer.previous[-1]


def rollback(bundles: Path, expected: LiveEntry) -> LivePointer:
    """Undo the last promotion, provided it is still ``expected`` (what the caller
    validated); ``BundleError`` when another promote or rollback got there first."""
    with _locked(bundles):
        target = rollback_target(bundles)
        if target != expected:
            raise BundleError("the live bundle changed while rolling back; run it again")
        pointer = read_pointer(bundles)
        assert pointer is not None  # rollback_target found a history
        new = LivePointer(current=target.model_copy(update={"at": _now()}),
                          previous=pointer.previous[:-1])
        write_text(pointer_path(bundles), new.model_dump_json(indent=2) + "\n")
        return new
