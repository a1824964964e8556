"""`streamer worker` restarts a crashed worker process, but not forever, and never one
that stopped because it needs an operator."""

from __future__ import annotations

import sys
from pathlib import Path

from streamer.cli.supervise import NEEDS_OPERATOR, supervise
from streamer.settings import Settings


def _settings(**kw: object) -> Settings:
    return Settings(_env_file=None, worker_restart_backoff_s=0.01, **kw)  # type: ignore[arg-type]


def _child(tmp_path: Path, codes: list[int]) -> list[str]:
    """A child that exits with codes[i] on its i-th run (counted in a file)."""
    counter = tmp_path / "runs"
    script = (
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        f"codes = {codes!r}\n"
        "sys.exit(codes[min(n, len(codes) - 1)])\n"
    )
    return [sys.executable, "-c", script]


def runs(tmp_path: Path) -> int:
    return int((tmp_path / "runs").read_text())


def test_a_crashed_worker_is_restarted_until_it_ends_cleanly(tmp_path: Path) -> None:
    assert supervise(_child(tmp_path, [1, 1, 0]), _settings()) == 0
    assert runs(tmp_path) == 3


def test_a_worker_that_needs_an_operator_is_not_restarted(tmp_path: Path) -> None:
    assert supervise(_child(tmp_path, [NEEDS_OPERATOR, 0]), _settings()) == NEEDS_OPERATOR
    assert runs(tmp_path) == 1


def test_too_many_crashes_in_the_window_end_the_supervisor(tmp_path: Path) -> None:
    assert supervise(_child(tmp_path, [3]), _settings(worker_max_restarts=2)) == 3
    assert runs(tmp_path) == 3  # the first run and two restarts
