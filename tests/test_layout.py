"""The layout a newcomer reads: every module says its one job in its opening docstring."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_module_opens_with_a_docstring() -> None:
    modules = sorted(p for pkg in ("streamer", "agents") for p in (ROOT / pkg).rglob("*.py"))
    assert len(modules) > 100
    silent = [str(p.relative_to(ROOT)) for p in modules
              if len((ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) or "").split())
              < 4]
    assert not silent, f"say each module's job in its opening docstring: {silent}"
