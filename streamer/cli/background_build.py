"""``streamer models build --background``: a bundle build detached from the terminal.

The build runs as its own process (a new session, so it outlives the command and the main
job that started it) at the lowest CPU priority (``nice``: it takes only the CPU the
workers leave), writes its output to ``<bundles>/<name>.build.log``, and holds the
bundle's build lock, so a second build of the same bundle refuses to start instead of
writing beside the first. Stopped half way, it resumes from its last finished step when
started again (the builder's step markers).
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import click

from streamer.bundle.locate import build_lock_path

NICE = 19  # the lowest priority: the build waits for whatever the workers leave


@dataclass(frozen=True)
class Started:
    pid: int
    log: Path


def log_path(out: Path) -> Path:
    return out.parent / f"{out.name}.build.log"


def claim(out: Path) -> IO[str] | None:
    """Take the build lock of ``out`` for as long as the returned file stays open (the
    process's life); None when another process holds it."""
    path = build_lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def is_building(out: Path) -> bool:
    """Whether a build of ``out`` runs now (its lock is held)."""
    lock = claim(out)
    if lock is None:
        return True
    lock.close()
    return False


def rerun_args(ctx: click.Context, skip: set[str]) -> list[str]:
    """The options ``ctx``'s command was given, as command-line arguments (``skip``: by
    parameter name), so that another process runs it the same way."""
    args: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if not isinstance(param, click.Option) or param.name in skip or value in (None, ()):
            continue
        flag = max(param.opts, key=len)
        if param.is_flag:
            args += [flag] if value else []
            continue
        for v in value if param.multiple else (value,):
            args += [flag, str(v)]
    return args


def start(out: Path, args: list[str]) -> Started | None:
    """``streamer <args>`` detached at the lowest priority, logging to ``log_path(out)``;
    None when a build of ``out`` already runs."""
    if is_building(out):
        return None
    log = log_path(out)
    log.parent.mkdir(parents=True, exist_ok=True)
    nice = [exe, "-n", str(NICE)] if (exe := shutil.which("nice")) else []
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}: streamer {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.Popen(
            [*nice, sys.executable, "-m", "streamer.cli.main", *args],
            stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Started(proc.pid, log)
