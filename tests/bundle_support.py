"""Copies of built bundles for tests (no tests here): cheap, and safe to damage."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _link_or_copy(src: str, target: str) -> None:
    try:
        os.link(src, target)
    except OSError:
        shutil.copy2(src, target)


def link_copy(src: Path, dst: Path) -> Path:
    """A copy of the bundle at ``src`` (without the build's work files) at ``dst``.

    Model files are hard links (cheap); a test replacing one must unlink it first. The
    manifest and tokenizer, which tests edit in place, are real copies.
    """
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_work"),
                    copy_function=_link_or_copy)
    for name in ("manifest.json", "tokenizer.json"):
        (dst / name).unlink()
        shutil.copy2(src / name, dst / name)
    return dst
