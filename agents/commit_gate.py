"""Keep Kafka offset commits out of the middle of a batch.

Under exactly-once, Faust commits a partition's offsets by committing the Kafka
transaction that also holds every record produced for it so far. If that happened
half-way through a batch, the batch's already-sent records would be committed
without its offsets, and a crash would replay (and re-send) them. Batches hold the
gate shared; a commit takes it exclusively and waits for running batches to finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any


class CommitGate:
    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self._batches = 0
        self._committing = False

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        async with self._cond:
            # A waiting commit goes first, so a busy stream cannot starve commits.
            await self._cond.wait_for(lambda: not self._committing)
            self._batches += 1
        try:
            yield
        finally:
            async with self._cond:
                self._batches -= 1
                self._cond.notify_all()

    @asynccontextmanager
    async def commit(self) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(lambda: not self._committing)
            self._committing = True
            await self._cond.wait_for(lambda: self._batches == 0)
        try:
            yield
        finally:
            async with self._cond:
                self._committing = False
                self._cond.notify_all()

    def wrap(self, commit: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def gated(*args: Any, **kwargs: Any) -> Any:
            async with self.commit():
                return await commit(*args, **kwargs)

        return gated
