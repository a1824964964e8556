"""Open-loop sending at a fixed rate.

Each message has an intended send time t0 + i / rate. A slow broker does not slow
the schedule down (no coordinated omission); the producer just falls behind and
catches up, and the lag is visible.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

T = TypeVar("T")


async def paced(items: Iterable[T], rate: float | None) -> AsyncIterator[tuple[float, T]]:
    """Yield (intended send time in epoch ms, item); ``rate=None`` means as fast as possible."""
    start_wall = time.time()
    start = time.monotonic()
    for i, item in enumerate(items):
        if rate:
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            intended = (start_wall + i / rate) * 1000.0
        else:
            intended = time.time() * 1000.0
        yield intended, item
