"""What the session's TINY bundle build produced (the fixture is in tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TinyBuild:
    path: Path
    seconds: float
