"""What the fault tests share (tests/test_chaos.py on one node, tests/test_cluster_chaos.py
on the clusters): the fault table's rows, the clean-outcome check, waiting, the stream."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness import CHAOS_ROWS, Namespace, Outcome, WorkerProcess, mixed_stream

from streamer.produce.sender import Outgoing


def record(fault: str, outcome: Outcome, recovery_s: float | None, recovery_what: str,
           note: str = "") -> None:
    CHAOS_ROWS.append({
        "fault": fault, "sent": outcome.sent, "scored": outcome.scored,
        "lost": outcome.lost, "double_counted": outcome.duplicates + max(0, outcome.redis_extra),
        "dead_lettered": outcome.dead_lettered,
        "recovery_s": None if recovery_s is None else round(recovery_s, 1),
        "recovery": recovery_what, "note": note,
    })


def assert_clean(outcome: Outcome) -> None:
    assert outcome.lost == 0, outcome
    assert outcome.duplicates == 0, outcome
    assert outcome.redis_extra == 0 and outcome.redis_exact, outcome
    assert outcome.scored + outcome.dead_lettered == outcome.sent, outcome


def wait_until(cond: Callable[[], bool], timeout: float, what: str, step: float = 0.25,
               workers: tuple[WorkerProcess, ...] = ()) -> float:
    """Seconds until ``cond()`` holds; fails the test after ``timeout`` or if a worker ends."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        for w in workers:
            assert w.proc is not None
            if w.proc.poll() is not None:
                raise AssertionError(f"{what}: worker {w.name} ended\n{w.tail()}")
        time.sleep(step)
    raise AssertionError(f"{what}: not within {timeout}s")


def restarts(worker: WorkerProcess) -> int:
    """How often the worker's supervisor restarted it after a crash."""
    return worker.log.read_text(errors="replace").count("[supervisor] [WARNING] worker crashed")


def stream(ns: Namespace, seed: int, minutes: float = 6) -> list[Outgoing]:
    return mixed_stream(ns, seed=seed, minutes=minutes, bad_fraction=0.05, big_message=False)
