"""Exactly-once commits are not reported as stalls (faust-streaming/faust#517)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import (
    BackgroundProducer,
    Namespace,
    WorkerProcess,
    mixed_stream,
    produce,
    wait_committed,
)

pytestmark = pytest.mark.slow


def test_a_worker_committing_in_transactions_is_not_logged_as_stalled(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    # Commits every 0.4 s against a 1 s stall timeout: Faust's detector (every 1 s)
    # checks while the stream has unread records, and without the fix it logs
    # "Has not committed ... at all since worker start" at ERROR from then on.
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path, extra_env={
        "STREAMER_COMMIT_INTERVAL_S": "0.4", "STREAMER_COMMIT_STALL_TIMEOUT_S": "1"})
    messages = mixed_stream(ns, seed=5, minutes=10, bad_fraction=0.0, big_message=False)
    worker = WorkerProcess(ns, "w1").start()
    try:
        worker.wait_ready()
        # A first commit, so that no check can fall between the first record and it.
        produce(ns, messages[:50])
        wait_committed(ns, workers=[worker])
        time.sleep(1.5)  # past the stall timeout
        BackgroundProducer(ns, messages[50:], rate=300).start().join()
        wait_committed(ns, workers=[worker])
    finally:
        worker.stop()
    log = worker.log.read_text(errors="replace")
    # Only this message is the bug: "Has not committed ... (last commit ...)" may be a
    # real pause of more than the 1 s timeout on a slow machine.
    assert "at all since worker start" not in log, worker.tail()
