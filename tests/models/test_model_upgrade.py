"""Model upgrades without a restart, on two real TINY bundles (two seeds, two bundle ids):
the bundle id, which bundle is live, promote and rollback by hand, and the worker's
watcher loading, swapping and freeing models in process."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_support import KeywordScorer
from bundle_support import link_copy
from click.testing import CliRunner, Result

from streamer.bundle.live import LiveEntry, promote, read_pointer
from streamer.bundle.load import load_bundle
from streamer.bundle.locate import COMPLETE_MARKER, choose_bundle
from streamer.cli.main import cli
from streamer.metrics import Metrics
from streamer.score.pool import ScoringPool
from streamer.score.select import bundle_scorer
from streamer.score.watch import ModelWatcher
from streamer.settings import Settings, get_settings


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, cache_dir=tmp_path / "cache", scorer="onnx", **values)


def _id(path: Path) -> str:
    return load_bundle(path, verify=()).id


def _corrupt_a_variant(bundle: Path) -> None:
    """Same size, other bytes: only the sha256 check notices."""
    manifest = load_bundle(bundle, verify=()).manifest
    f = bundle / manifest.variant(manifest.default_variant["cpu"]).file
    size = f.stat().st_size
    f.unlink()  # a hard link to the session's bundle: never write through it
    f.write_bytes(b"\0" * size)


def test_the_bundle_id_names_the_model_not_the_copy(
    tiny_bundle: Path, tiny_bundle_b: Path, tmp_path: Path,
) -> None:
    a = _id(tiny_bundle)
    assert len(a) == 16 and a != _id(tiny_bundle_b)  # another seed: other weights

    copy = link_copy(tiny_bundle, tmp_path / "copy")
    raw = json.loads((copy / "manifest.json").read_text())
    raw["build"]["created_at"] = "2030-01-01T00:00:00+00:00"  # the record of the build
    (copy / "manifest.json").write_text(json.dumps(raw))
    assert _id(copy) == a

    raw["heads"][0]["labels"].reverse()  # the same weights read with other labels
    (copy / "manifest.json").write_text(json.dumps(raw))
    assert _id(copy) != a


def test_the_live_bundle_is_pinned_else_promoted_else_full_else_default(
    tiny_bundle: Path, tiny_bundle_b: Path, tmp_path: Path,
) -> None:
    s = _settings(tmp_path)
    root = s.paths.bundles
    default = link_copy(tiny_bundle, root / "default")
    full = link_copy(tiny_bundle_b, root / "full")
    (full / COMPLETE_MARKER).unlink()
    assert choose_bundle(s).reason == "default"  # a full build still running is not taken
    shutil.copy2(tiny_bundle_b / COMPLETE_MARKER, full / COMPLETE_MARKER)
    assert (choose_bundle(s).path, choose_bundle(s).reason) == (full, "full")

    promote(root, default, _id(default), LiveEntry(bundle_id=_id(full)))
    assert (choose_bundle(s).path, choose_bundle(s).reason) == (default.resolve(), "promoted")
    pinned = choose_bundle(s.replace(bundle_dir=str(tiny_bundle)))
    assert (pinned.path, pinned.reason) == (tiny_bundle, "pinned")

    shutil.rmtree(default)  # the promoted bundle is gone: serve the automatic choice
    gone = choose_bundle(s)
    assert gone.reason == "full" and gone.note is not None and "promoted" in gone.note


@pytest.fixture
def operator_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The CLI in this process with its own cache: returns the bundles directory."""
    monkeypatch.setenv("STREAMER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STREAMER_SCORER", "onnx")
    monkeypatch.delenv("STREAMER_BUNDLE_DIR", raising=False)
    get_settings.cache_clear()
    yield tmp_path / "cache" / "bundles"
    get_settings.cache_clear()


def _streamer(*args: str) -> Result:
    return CliRunner().invoke(cli, ["models", *args], catch_exceptions=False)


def test_promote_validates_and_rollback_undoes_one_promotion_at_a_time(
    operator_env: Path, tiny_bundle: Path, tiny_bundle_b: Path, tmp_path: Path,
) -> None:
    root = operator_env
    link_copy(tiny_bundle, root / "default")
    a = _id(tiny_bundle)

    done = _streamer("promote", str(tiny_bundle_b))
    assert done.exit_code == 0, done.output
    pointer = read_pointer(root)
    assert pointer is not None and pointer.current.path == tiny_bundle_b.resolve()
    assert [(e.path, e.bundle_id) for e in pointer.previous] == [(None, a)]  # the automatic
    listing = _streamer("list")
    assert "live:" in listing.output and "promoted" in listing.output, listing.output
    assert "rollback returns to the automatic choice" in listing.output

    broken = link_copy(tiny_bundle_b, tmp_path / "broken")
    _corrupt_a_variant(broken)
    refused = _streamer("promote", str(broken))
    assert refused.exit_code == 1 and "sha256 mismatch" in refused.output, refused.output
    assert read_pointer(root) == pointer  # nothing written

    by_name = _streamer("promote", "default")  # a name under <cache>/bundles
    assert by_name.exit_code == 0, by_name.output
    assert choose_bundle(get_settings()).path == (root / "default").resolve()

    back = _streamer("rollback")
    assert back.exit_code == 0, back.output
    assert choose_bundle(get_settings()).path == tiny_bundle_b.resolve()
    assert _streamer("rollback").exit_code == 0
    choice = choose_bundle(get_settings())
    assert (choice.reason, _id(choice.path)) == ("default", a)
    nothing = _streamer("rollback")
    assert nothing.exit_code == 1 and "nothing to roll back to" in nothing.output


class Watched:
    """A scoring pool on bundle A (the quick default's place) and the worker's watcher."""

    def __init__(self, tmp_path: Path, bundle: Path) -> None:
        self.settings = _settings(tmp_path, model_watch_s=1)
        self.root = self.settings.paths.bundles
        link_copy(bundle, self.root / "default")
        self.loads: list[Path] = []
        self.metrics = Metrics()
        first = bundle_scorer(self.settings, self.root / "default")
        self.pool = ScoringPool(first)
        self.watcher = ModelWatcher(self.settings, self.pool, self._load, self.metrics)

    def _load(self, path: Path):  # type: ignore[no-untyped-def]
        self.loads.append(path)
        return bundle_scorer(self.settings, path)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels or {})

    def close(self) -> None:
        self.watcher.shutdown()
        self.pool.shutdown()


async def test_a_newer_complete_bundle_is_loaded_beside_swapped_in_and_the_old_freed(
    tiny_bundle: Path, tiny_bundle_b: Path, tmp_path: Path,
) -> None:
    w = Watched(tmp_path, tiny_bundle)
    try:
        assert w.watcher.enabled and not await w.watcher.check()  # the live one: nothing
        assert w.loads == []
        old = weakref.ref(w.pool.scorer)

        link_copy(tiny_bundle_b, w.root / "full")  # a full build finished (or copied in)
        # The loop keeps turning while the new model loads and warms on its own thread.
        gaps: list[float] = []

        async def ticks() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(ticks())
        swapped = await w.watcher.check()
        ticker.cancel()
        assert swapped and w.loads == [w.root / "full"]
        assert w.pool.scorer.model.bundle_id == _id(tiny_bundle_b)
        assert len(gaps) > 5 and max(gaps) < 0.5, f"the event loop stalled {max(gaps):.3f}s"
        for _ in range(100):  # nothing keeps the old scorer: its ONNX session is freed
            if old() is None:
                break
            await asyncio.sleep(0.01)
        assert old() is None
        assert w.sample("streamer_model_swaps_total", {"result": "swapped"}) == 1
        assert w.sample("streamer_models_retired_alive") == 0
        live = {"bundle_id": _id(tiny_bundle_b), "bundle": "tiny-b",
                "variant": w.pool.scorer.model.variant}
        assert w.sample("streamer_model_info", live) == 1
        assert not await w.watcher.check()  # settled
    finally:
        w.close()


async def test_a_bundle_that_fails_to_load_keeps_the_old_model_until_it_changes(
    tiny_bundle: Path, tiny_bundle_b: Path, tmp_path: Path,
) -> None:
    w = Watched(tmp_path, tiny_bundle)
    try:
        full = link_copy(tiny_bundle_b, w.root / "full")
        _corrupt_a_variant(full)
        live = w.pool.scorer.model
        assert not await w.watcher.check()
        assert w.pool.scorer.model == live and len(w.loads) == 1
        assert w.sample("streamer_model_swaps_total", {"result": "failed"}) == 1
        assert not await w.watcher.check()  # the same broken bundle is not loaded again
        assert len(w.loads) == 1

        shutil.rmtree(full)  # repaired: a fresh copy of the bundle
        link_copy(tiny_bundle_b, full)
        assert await w.watcher.check()
        assert w.pool.scorer.model.bundle_id == _id(tiny_bundle_b)
    finally:
        w.close()


def test_a_pinned_bundle_or_the_baseline_is_never_switched(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    pool = ScoringPool(KeywordScorer())
    for settings, watches in ((s, True), (s.replace(bundle_dir=str(tmp_path)), False),
                              (s.replace(scorer="baseline"), False),
                              (s.replace(model_watch_s=0), False)):
        watcher = ModelWatcher(settings, pool, lambda path, s=settings: bundle_scorer(s, path))
        assert watcher.enabled == watches
        watcher.shutdown()
    pool.shutdown()
