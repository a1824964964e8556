"""Two fixes to faust-streaming's exactly-once commit path.

**Abort a kept partition's open transaction when a rebalance rewinds it.**

On every rebalance faust-streaming (0.15) forgets each partition's acked but
uncommitted offsets and seeks every partition the worker keeps back to its committed
offset, but it leaves that partition's transactional producer in its open transaction.
The records already sent in it for the rewound messages would be sent again and both
copies committed together. Aborting the open transaction first makes the replay the
only copy: it holds exactly the records of messages past the committed offset.

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
import time
from collections.abc import Iterable, Mapping
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
            kept = sorted(manager._tps_to_transactional_ids(set(assigned) - set(newly_assigned)))
            for tid in open_transactions(app.producer, kept):
                log.info("rebalance: aborting %s's open transaction; its partition replays "
                         "from the committed offset", tid)
                await app.producer.abort_transaction(tid)
            await restart(assigned, revoked, newly_assigned)

    manager.on_rebalance = on_rebalance


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
