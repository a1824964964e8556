"""Abort a kept partition's open transaction when a rebalance rewinds it.

On every rebalance faust-streaming (0.15) forgets each partition's acked but
uncommitted offsets and seeks every partition the worker keeps back to its committed
offset, but it leaves that partition's transactional producer in its open transaction.
The records already sent in it for the rewound messages would be sent again and both
copies committed together. Aborting the open transaction first makes the replay the
only copy: it holds exactly the records of messages past the committed offset.

The whole transaction hand-over runs under the commit gate, so no batch is sending and
no periodic commit is beginning a transaction while producers are aborted, stopped and
begun: without it a batch could send into a producer that had just left its transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
