"""Fixes to faust-streaming's exactly-once commit path.

**Commit what is acked before a rebalance forgets it.** When a rebalance starts, faust's
consumer drops every partition's acked but uncommitted offsets (all partitions: the eager
protocol revokes them all), while the records already sent for those messages stay in
their partition's open transaction. The next commit of that transaction, for the offsets
of a batch acked later (often of the other input topic sharing its transactional id),
commits those records without their offsets: the messages replay, and the copies are
committed twice (duplicates on `scored` in some runs of the zombie-worker fault test, the
second copy always from the same producer and epoch; docs/BENCHMARKS.md). So before faust
forgets them, under the commit gate (no batch is half-written), every acked offset is
committed with its records; batches written after that ack into fresh bookkeeping.

**Abort every open transaction when a rebalance rewinds the partitions.**

On every rebalance faust-streaming (0.15) forgets each partition's acked but
uncommitted offsets and seeks every partition the worker keeps back to its committed
offset, but it leaves that partition's transactional producer in its open transaction.
The records already sent in it for the rewound messages would be sent again and both
copies committed together. Aborting the open transaction first makes the replay the
only copy: it holds exactly the records of messages past the committed offset.

Not only kept partitions: a partition taken away and handed back (a zombie worker that
wakes after the session timeout rejoins, takes two partitions, and leaves again) can
come back as "newly assigned" while its producer still holds the transaction from
before, when the rebalance that took it away never reached faust's
``transactions.on_rebalance`` (faust then logs ``Invalid state transition
IN_TRANSACTION -> IN_TRANSACTION`` and sends the replay into the old transaction). An
open transaction at a rebalance only ever holds records of uncommitted messages, which
whoever owns the partition next replays, so every one is aborted, revoked ones too
(faust only stops those, and the broker would keep them open until the new owner's
producer fences them).

**Stop at once when fenced.** A worker whose producer is fenced (``ProducerFenced``:
another member owns its partitions, so it was paused past the session timeout) must not
go on: faust's crash path takes seconds, during which its consumer rejoins the group
and takes partitions back, only to give them up again. The process exits straight away
with ``FENCED_EXIT`` (not ``NEEDS_OPERATOR``: its supervisor restarts it as a new member).
Nothing it did since its last commit counts: its transactions are aborted by the fence,
and Redis counts each offset once.

The whole transaction hand-over runs under the commit gate, so no batch is sending and
no periodic commit is beginning a transaction while producers are aborted, stopped and
begun: without it a batch could send into a producer that had just left its transaction.

**Tell the livelock detector about transactional commits.** Faust records a partition's
last commit time only on its non-transactional path, so under exactly-once its detector
logs "Has not committed ... at all since worker start" at ERROR, for every partition
with unread records, every few seconds once ``broker_commit_livelock_soft_timeout`` has
passed, while the offsets are in fact committed (faust-streaming/faust#517). A real stall
(no commit for that long) is still reported.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust
from faust.types import TP

from agents.commit_gate import CommitGate

log = logging.getLogger(__name__)


def open_transactions(producer: Any, transactional_ids: Iterable[str]) -> list[str]:
    """The ids among ``transactional_ids`` whose producer is inside a transaction."""
    producers = getattr(producer, "_transaction_producers", {})
    return [
        tid for tid in transactional_ids
        if (p := producers.get(tid)) is not None and p._txn_manager.is_in_transaction()
    ]


def install_abort_on_rewind(app: faust.App, gate: CommitGate) -> None:
    """Wrap the consumer's transaction manager so kept partitions start clean."""
    manager: Any = app.consumer.transactions
    restart = manager.on_rebalance

    async def on_rebalance(assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]) -> None:
        async with gate.commit():
            held = sorted(getattr(app.producer, "_transaction_producers", {}))
            for tid in open_transactions(app.producer, held):
                log.info("rebalance: aborting %s's open transaction; its partition replays "
                         "from the committed offset", tid)
                await app.producer.abort_transaction(tid)
            await restart(assigned, revoked, newly_assigned)

    manager.on_rebalance = on_rebalance


def commit_acked_before_revoke(app: faust.App, gate: CommitGate,
                               force_commit: Callable[..., Any]) -> None:
    """Wrap the consumer's revoke callback: commit every acked offset first.

    ``force_commit`` is the consumer's own, not the gated one (the gate is held here).
    The wrapped callback forgets the acked offsets before its first await, so no batch
    can ack in between and be forgotten uncommitted.
    """
    consumer: Any = app.consumer
    revoke = consumer.on_partitions_revoked

    async def on_partitions_revoked(revoked: set[TP]) -> None:
        async with gate.commit():
            try:
                await force_commit()
            except Exception as exc:  # the rebalance must go on; what failed to commit
                # stays in an open transaction, which the assignment then aborts.
                log.warning("rebalance: committing the acked offsets first failed: %r", exc)
        await revoke(revoked)

    consumer.on_partitions_revoked = on_partitions_revoked


def stamp_transactional_commits(app: faust.App) -> None:
    """Record each transactional commit's time where the livelock detector reads it."""
    manager: Any = app.consumer.transactions
    commit = manager.commit

    async def stamped(offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        did_commit: bool = await commit(offsets, start_new_transaction=start_new_transaction)
        # The detector compares against time.monotonic() in the consumer thread.
        stamps = getattr(getattr(app.consumer, "_thread", None), "tp_last_committed_at", None)
        if did_commit and stamps is not None:
            stamps.update(dict.fromkeys(offsets, time.monotonic()))
        return did_commit

    manager.commit = stamped


# EX_TEMPFAIL: a restart helps (the supervisor starts a new group member), unlike
# NEEDS_OPERATOR.
FENCED_EXIT = 75


def is_fenced(exc: BaseException | None) -> bool:
    """Whether ``exc``, or what caused it, says another producer took over our partitions."""
    from aiokafka.errors import ProducerFenced

    seen = 0
    while exc is not None and seen < 8:  # the cause chain, bounded
        if isinstance(exc, ProducerFenced):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def exit_when_fenced(app: faust.App, exit: Callable[[int], object] = os._exit) -> None:
    """Make the app's crash path exit the process at once when the reason is a fence."""
    crash = app.crash

    async def crash_or_exit(reason: BaseException) -> None:
        if is_fenced(reason):
            log.critical(
                "fenced: another worker owns this worker's partitions (this one stopped "
                "answering for longer than the session timeout); exiting at once (code %d) "
                "instead of rejoining the group, nothing past the last commit counts: %r",
                FENCED_EXIT, reason)
            for handler in logging.getLogger().handlers:
                handler.flush()
            exit(FENCED_EXIT)
        await crash(reason)

    app.crash = crash_or_exit  # type: ignore[method-assign]
