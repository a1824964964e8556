"""ensure_default_bundle: reuse a cached or configured bundle, build only when none exists."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from streamer.bundle import locate
from streamer.bundle.errors import BundleError
from streamer.settings import Settings
from streamer.training import quick
from streamer.training.build import BuildConfig
from streamer.training.progress import SILENT, Reporter


def _copy_bundle(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_work"))


def test_cached_bundle_is_reused(tiny_bundle: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(cache_dir=tmp_path)
    _copy_bundle(tiny_bundle, settings.paths.bundles / "default")

    def no_build(*_: object, **__: object) -> Path:
        raise AssertionError("must not build when a bundle is cached")

    monkeypatch.setattr("streamer.training.build.build_bundle", no_build)
    assert quick.ensure_default_bundle(settings) == settings.paths.bundles / "default"


def test_a_cached_bundle_from_older_data_sets_is_served_with_a_warning(
    tiny_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(cache_dir=tmp_path)
    cached = settings.paths.bundles / "default"
    _copy_bundle(tiny_bundle, cached)
    manifest = json.loads((cached / "manifest.json").read_text())
    manifest["datasets"] = [d for d in manifest["datasets"] if d["name"] != "tfn-topic"]
    (cached / "manifest.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, "streamer.training.quick"):
        assert quick.ensure_default_bundle(settings) == cached
    assert "tfn-topic" in caplog.text and "--profile quick" in caplog.text


def test_missing_bundle_is_built_with_the_quick_profile(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(cache_dir=tmp_path)
    seen: list[BuildConfig] = []

    def fake_build(cfg: BuildConfig, reporter: Reporter = SILENT) -> Path:
        seen.append(cfg)
        _copy_bundle(tiny_bundle, cfg.out)
        return cfg.out

    monkeypatch.setattr("streamer.training.build.build_bundle", fake_build)
    path = quick.ensure_default_bundle(settings, reporter=SILENT)
    assert path == settings.paths.bundles / "default"
    (cfg,) = seen
    assert cfg.profile == "quick" and not cfg.teacher and cfg.student_layers == [2]
    assert cfg.student_precisions == ["int8"] and cfg.max_length == {"chat": 64, "news": 128}
    # Second call: cached now.
    assert quick.ensure_default_bundle(settings, reporter=SILENT) == path
    assert len(seen) == 1


def test_configured_bundle_dir_is_never_built_over(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, bundle_dir=tmp_path / "mine")
    with pytest.raises(BundleError, match="does not exist"):
        quick.ensure_default_bundle(settings)
    assert not (tmp_path / "mine").exists()


def test_a_complete_full_build_is_preferred_over_the_quick_default(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    settings = Settings(cache_dir=tmp_path)
    _copy_bundle(tiny_bundle, settings.paths.bundles / "default")
    full = settings.paths.bundles / "full"
    full.mkdir(parents=True)
    (full / "tokenizer.json").write_text("{}")  # a full build still running: not complete
    assert locate.default_bundle_path(settings) == settings.paths.bundles / "default"
    shutil.rmtree(full)
    _copy_bundle(tiny_bundle, full)
    assert quick.ensure_default_bundle(settings) == full
    explicit = Settings(cache_dir=tmp_path, bundle_dir=settings.paths.bundles / "default")
    assert locate.default_bundle_path(explicit) == settings.paths.bundles / "default"
