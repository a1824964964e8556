"""Model-bundle fixtures; the TINY bundle itself (``tiny_build``, ``tiny_bundle``) comes
from tests/conftest.py, since the fault tests run workers on it too."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the bundle (without the build's work files) a test may damage.

    Model files are hard links (cheap); a test replacing one must unlink it first.
    """
    dst = tmp_path / "bundle"

    def link_or_copy(src: str, target: str) -> None:
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)

    shutil.copytree(tiny_bundle, dst, ignore=shutil.ignore_patterns("_work"),
                    copy_function=link_or_copy)
    for name in ("manifest.json", "tokenizer.json"):  # edited in place by tests: real copies
        (dst / name).unlink()
        shutil.copy2(tiny_bundle / name, dst / name)
    return dst
