"""Model-bundle fixtures; the TINY bundle itself (``tiny_build``, ``tiny_bundle``) comes
from tests/conftest.py, since the fault tests run workers on it too."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_support import link_copy
from tiny_bundle import TinyBuild


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the bundle (without the build's work files) a test may damage.

    Model files are hard links (cheap); a test replacing one must unlink it first.
    """
    return link_copy(tiny_bundle, tmp_path / "bundle")


@pytest.fixture(scope="session")
def tiny_bundle_b(tiny_build: TinyBuild, data_dir: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second TINY bundle, built once per session with another seed: other weights, so
    another bundle id. The model-upgrade tests switch between the two."""
    from streamer.training.build import build_bundle, profile_config

    out = tmp_path_factory.mktemp("bundles") / "tiny-b"
    build_bundle(profile_config("tiny", data_dir, out, seed=14, threads=2,
                                command="pytest tiny-b"))
    return out
