"""Restart a crashed worker process: the crash-only half of exactly-once.

A worker that crashes (a broker restart that breaks aiokafka's transactional sender, an
agent error) has committed nothing past what Kafka and Redis acknowledged, so a fresh
process resumes from the committed offsets and loses nothing. ``streamer worker`` runs
the real worker as a child and restarts it after a crash, with a doubling backoff and a
bounded number of restarts per window. Exit code ``NEEDS_OPERATOR`` (a wrong password,
Redis out of memory or unable to persist...) is never restarted: it would fail again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from types import FrameType

from streamer.settings import Settings

log = logging.getLogger(__name__)

CHILD_ENV = "STREAMER_WORKER_CHILD"
NEEDS_OPERATOR = 78  # EX_CONFIG: restarting cannot help
_MAX_BACKOFF_S = 30.0
# The child bounds its own stop (shutdown_timeout_s); this is for a child that cannot
# even run its watchdog (stopped with SIGSTOP, or stuck in the kernel).
_KILL_GRACE_S = 5.0


def is_child() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def supervise(argv: list[str], settings: Settings) -> int:
    """Run ``argv`` until it exits cleanly, needs an operator, or crashes too often."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def started(proc: subprocess.Popen[bytes]) -> None:
        nonlocal child
        child = proc

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(argv, settings, lambda: stopping, started)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(argv: list[str], settings: Settings, stopping: Callable[[], bool],
         started: Callable[[subprocess.Popen[bytes]], None]) -> int:
    crashes: deque[float] = deque()
    backoff = settings.worker.restart_backoff_s
    while True:
        child = subprocess.Popen(argv, env={**os.environ, CHILD_ENV: "1"})
        started(child)
        if stopping():  # a signal that came before the child existed
            child.terminate()
        rc = _wait(child, stopping, settings.worker.shutdown_timeout_s + _KILL_GRACE_S)
        if stopping() or rc == 0:
            return rc
        if rc == NEEDS_OPERATOR:
            log.error("worker stopped (exit %d): it needs an operator, not a restart", rc)
            return rc
        now = time.monotonic()
        crashes.append(now)
        while crashes and now - crashes[0] > settings.worker.restart_window_s:
            crashes.popleft()
        if len(crashes) > settings.worker.max_restarts:
            log.error("worker crashed %d times in %.0f s (exit %d); giving up "
                      "(STREAMER_WORKER_MAX_RESTARTS)", len(crashes),
                      settings.worker.restart_window_s, rc)
            return rc
        log.warning("worker crashed (exit %d); restarting in %.1f s (%d/%d in the window); "
                    "it resumes from the committed offsets", rc, backoff, len(crashes),
                    settings.worker.max_restarts)
        deadline = time.monotonic() + backoff
        while not stopping() and time.monotonic() < deadline:
            time.sleep(0.1)
        if stopping():
            return rc
        backoff = min(backoff * 2, _MAX_BACKOFF_S)


def _wait(child: subprocess.Popen[bytes], stopping: Callable[[], bool],
          stop_deadline_s: float) -> int:
    """The child's exit code; SIGKILL it when it outlives a stop by ``stop_deadline_s``."""
    stop_seen: float | None = None
    while True:
        try:
            return child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        if stopping():
            now = time.monotonic()
            stop_seen = stop_seen or now
            if now - stop_seen > stop_deadline_s:
                log.error("worker still running %.0f s after the stop signal; killing it",
                          stop_deadline_s)
                child.kill()
                return child.wait()


def child_argv() -> list[str]:
    """The same command line, run as the supervised child."""
    return [sys.executable, "-m", "streamer.cli.main", *sys.argv[1:]]
