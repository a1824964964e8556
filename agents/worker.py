"""The Faust worker both pipelines run under, without Faust's start-up spinner.

Faust's ``Worker`` turns a spinner on every log record while it starts, and to see every
record it sets the root logger to DEBUG, which stays after start-up. Every ``log.debug``
in aiokafka, Faust and mode then builds a ``LogRecord`` (with a stack walk for the
caller) that the handlers drop: about 8% of a loaded worker's CPU. Without the spinner,
the root logger keeps the level the worker was started with.
"""

from __future__ import annotations

import logging

import faust


class Worker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
