"""The worker process logs at the level it was started with, not DEBUG underneath."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import faust

from agents.worker import Worker


def test_library_debug_records_are_not_built_at_warning(
    root_logger: logging.Logger, tmp_path: Path
) -> None:
    loop = asyncio.new_event_loop()
    try:
        app = faust.App("log-level-test", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
        Worker(app, loglevel="warning", loop=loop)._setup_logging()
        # Faust's own Worker leaves the root logger at DEBUG after its set-up, so every
        # aiokafka debug call would build a record for the handlers to drop.
        assert not logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("agents").isEnabledFor(logging.WARNING)
    finally:
        loop.close()
