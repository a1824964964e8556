"""``streamer models promote BUNDLE`` and ``streamer models rollback``: the live model by hand.

Both validate the bundle they make live as a worker would load it (every file's sha256,
an ONNX Runtime session opened and warmed) before writing the pointer
(``streamer.bundle.live``). Workers switch to it within ``STREAMER_MODEL_WATCH_S``, between
batches, without a restart (``streamer.score.watch``).
"""

from __future__ import annotations

from pathlib import Path

import click

from streamer.bundle.errors import BundleError
from streamer.bundle.live import LiveEntry, promote, read_pointer, rollback, rollback_target
from streamer.bundle.load import load_bundle
from streamer.bundle.locate import (
    COMPLETE_MARKER,
    automatic_bundle,
    choose_bundle,
    is_complete_bundle,
)
from streamer.cli.common import console, fail, settings_with
from streamer.schemas.events import ModelRef
from streamer.score.base import ScorerError
from streamer.settings import Settings


def _unpinned(settings: Settings) -> Settings:
    # The pointer is what this command changes; a pin in this shell changes nothing of it.
    return settings.replace(bundle_dir=None)


def validate(settings: Settings, path: Path) -> ModelRef:
    """Load ``path`` as a worker would, fully verified; BundleError or ScorerError."""
    from streamer.score.select import bundle_scorer

    if not (path / COMPLETE_MARKER).is_file():
        load_bundle(path, verify=())  # names what is missing when it is not a bundle at all
        raise BundleError(f"bundle {path} has no {COMPLETE_MARKER}: its build has not "
                          "finished (or it was copied without it)")
    load_bundle(path)  # every variant's sha256
    scorer = bundle_scorer(settings, path)
    scorer.warmup()
    return scorer.model


def live_entry(settings: Settings) -> LiveEntry:
    """What is live now, as the pointer records it (the automatic choice without a path)."""
    choice = choose_bundle(_unpinned(settings))
    bundle_id = (load_bundle(choice.path, verify=()).id
                 if is_complete_bundle(choice.path) else None)
    return LiveEntry(path=choice.path if choice.reason == "promoted" else None,
                     bundle_id=bundle_id)


def _bundle_arg(settings: Settings, bundle: str) -> Path:
    """A directory, or the name of one under <cache>/bundles."""
    path = Path(bundle).expanduser()
    if not path.is_dir() and (settings.paths.bundles / bundle).is_dir():
        path = settings.paths.bundles / bundle
    return path.resolve()


def _switch_note(settings: Settings) -> None:
    watch = settings.scoring.model_watch_s
    console.print(f"workers switch within {watch:g} s (STREAMER_MODEL_WATCH_S), between "
                  "batches, without a restart" if watch > 0 else
                  "[yellow]STREAMER_MODEL_WATCH_S is 0: workers switch when restarted[/]")
    if settings.scoring.bundle_dir is not None:
        console.print(f"[yellow]STREAMER_BUNDLE_DIR is set ({settings.scoring.bundle_dir}): "
                      "workers started with it stay pinned to that bundle[/]")


@click.command("promote")
@click.argument("bundle")
def promote_cmd(bundle: str) -> None:
    """Make BUNDLE (a directory, or a name under <cache>/bundles) the live model.

    It is validated first: every file's sha256, and an ONNX Runtime session opened and
    warmed as a worker would. `streamer models rollback` returns to what was live before.
    """
    settings = settings_with()
    path = _bundle_arg(settings, bundle)
    try:
        model = validate(settings, path)
        live = live_entry(settings)
        if live.path == path:
            console.print(f"{path} is already the promoted bundle; nothing to do")
            return
        promote(settings.paths.bundles, path, model.bundle_id, live)
    except (BundleError, ScorerError) as exc:
        fail(str(exc), "pass a complete bundle directory (`streamer models list` shows them)")
        return
    console.print(f"promoted {path}: model [bold]{model.short()}[/] (bundle id "
                  f"{model.bundle_id}); before it: {live.describe()}")
    _switch_note(settings)


@click.command("rollback")
def rollback_cmd() -> None:
    """Return to the model that was live before the last promotion.

    Rolling back the first promotion returns to the automatic choice (the full build
    once complete, else the quick default). The bundle is validated as for promote.
    """
    settings = settings_with()
    bundles = settings.paths.bundles
    try:
        target = rollback_target(bundles)
        path = target.path if target.path is not None else automatic_bundle(settings)
        if target.path is not None or is_complete_bundle(path):
            validate(settings, path)
        else:
            raise BundleError(f"the automatic choice, {path}, is not a complete bundle")
        rollback(bundles, target)
    except (BundleError, ScorerError) as exc:
        fail(str(exc))
        return
    now = choose_bundle(_unpinned(settings))
    console.print(f"rolled back: live is now {now.describe()}")
    pointer = read_pointer(bundles)
    if pointer is not None and pointer.previous:
        console.print(f"a further rollback would return to {pointer.previous[-1].describe()}")
    _switch_note(settings)
