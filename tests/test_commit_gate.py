"""The commit gate: a commit never runs while a batch is between send and ack."""

from __future__ import annotations

import asyncio

from agents.commit_gate import CommitGate


async def test_commit_waits_for_running_batches() -> None:
    gate = CommitGate()
    order: list[str] = []

    async def batch() -> None:
        async with gate.batch():
            order.append("batch-start")
            await asyncio.sleep(0.05)
            order.append("batch-end")

    async def commit() -> None:
        await asyncio.sleep(0.01)
        async with gate.commit():
            order.append("commit")

    await asyncio.gather(batch(), commit())
    assert order == ["batch-start", "batch-end", "commit"]


async def test_new_batches_wait_for_a_pending_commit() -> None:
    gate = CommitGate()
    order: list[str] = []

    async def first() -> None:
        async with gate.batch():
            await asyncio.sleep(0.05)
            order.append("first")

    async def commit() -> None:
        await asyncio.sleep(0.01)
        async with gate.commit():
            order.append("commit")

    async def second() -> None:
        await asyncio.sleep(0.02)  # arrives while the commit is waiting
        async with gate.batch():
            order.append("second")

    await asyncio.gather(first(), commit(), second())
    assert order == ["first", "commit", "second"]


async def test_batches_run_concurrently_with_each_other() -> None:
    gate = CommitGate()
    inside = 0
    peak = 0

    async def batch() -> None:
        nonlocal inside, peak
        async with gate.batch():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(batch(), batch(), batch())
    assert peak == 3


async def test_wrapped_commit_returns_the_inner_result() -> None:
    gate = CommitGate()

    async def inner(x: int) -> int:
        return x + 1

    assert await gate.wrap(inner)(1) == 2
