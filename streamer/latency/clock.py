"""A wall clock that never jumps: monotonic within the process, anchored once to epoch time.

Stage differences inside the worker are therefore monotonic-accurate, while the
values stay comparable with other processes' wall clocks (Kafka record timestamps).
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self) -> None:
        self._wall0_ns = time.time_ns()
        self._mono0_ns = time.monotonic_ns()

    def now_ms(self) -> float:
        return (self._wall0_ns + time.monotonic_ns() - self._mono0_ns) / 1e6
