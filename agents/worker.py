"""The Faust worker both pipelines run under: no start-up spinner, and a bounded stop.

Faust's ``Worker`` turns a spinner on every log record while it starts, and to see every
record it sets the root logger to DEBUG, which stays after start-up. Every ``log.debug``
in aiokafka, Faust and mode then builds a ``LogRecord`` (with a stack walk for the caller)
that the handlers drop: a measurable share of a loaded worker's CPU (docs/BENCHMARKS.md).
Without the spinner, the root logger keeps the level the worker was started with.

A stop signal arms a watchdog: with Kafka and Redis gone, Faust's stop waits out one
timeout after another (the measured stops: docs/BENCHMARKS.md), so a deploy or an
orchestrator's grace period would end in SIGKILL anyway. After ``STREAMER_SHUTDOWN_TIMEOUT_S`` the
process exits; what it had not committed is replayed by whoever owns the partitions next.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from typing import Any

import faust

from streamer.keys import safe_name
from streamer.logs import LogFormat, use_json
from streamer.settings import get_settings

log = logging.getLogger(__name__)


def default_worker_id(configured: str | None) -> str:
    """STREAMER_WORKER_ID, else host-pid (as the worker's runtime names itself)."""
    return configured or f"{safe_name(socket.gethostname(), fallback='host')}-{os.getpid()}"

# Exit code of a stop that ran past its deadline: a crash to the supervisor, which does
# not restart a worker it was itself asked to stop.
SHUTDOWN_TIMED_OUT = 1


class ShutdownWatchdog:
    """Exits the process ``timeout_s`` after ``arm()``, unless it has exited by then."""

    def __init__(self, timeout_s: float, exit: Callable[[int], Any] = os._exit) -> None:
        self.timeout_s = timeout_s
        self._exit = exit
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is not None:
            return
        self._timer = threading.Timer(self.timeout_s, self._fire)
        self._timer.daemon = True  # a clean stop before the deadline is not held up
        self._timer.start()

    def _fire(self) -> None:
        log.error("the worker did not stop within %.0f s of the stop signal "
                  "(STREAMER_SHUTDOWN_TIMEOUT_S); exiting now, uncommitted batches replay",
                  self.timeout_s)
        for handler in logging.getLogger().handlers:
            handler.flush()
        self._exit(SHUTDOWN_TIMED_OUT)


class Worker(faust.Worker):
    """``log_format`` json (``STREAMER_LOG_FORMAT``) turns Faust's log handlers into JSON
    lines naming ``worker_id``; both default to the process's settings."""

    def __init__(self, *args: Any, shutdown_timeout_s: float | None = None,
                 log_format: LogFormat | None = None, worker_id: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.watchdog = (None if shutdown_timeout_s is None
                         else ShutdownWatchdog(shutdown_timeout_s))
        self.log_format = log_format
        self.worker_id = worker_id

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        settings = get_settings() if self.log_format is None or self.worker_id is None else None
        log_format = self.log_format or (settings.worker.log_format if settings else "text")
        if log_format == "json":
            worker_id = self.worker_id
            if worker_id is None and settings is not None:
                worker_id = default_worker_id(settings.worker.id)
            use_json(logger, worker_id)

    def _schedule_shutdown(self, sig: signal.Signals) -> None:
        if self.watchdog is not None:
            self.watchdog.arm()
        super()._schedule_shutdown(sig)
