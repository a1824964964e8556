"""The variants taking turns: one step at a time, each timed and with the waiting workers' CPU.

Every variant's worker runs from start to end; a FIFO lock makes them take turns, one step
each (round robin), so that each variant's steps spread over the same minutes: on a shared
machine the CPU the broker and the OS get drifts over minutes, and variants measured one
after the other were comparing minutes as much as settings.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from streamer.bench.pipeline.cpu import group_cpu_s
from streamer.bench.pipeline.hold import hold
from streamer.bench.pipeline.messages import Messages
from streamer.bench.pipeline.processes import Say, Session
from streamer.bench.pipeline.results import Phase, Plan, Run
from streamer.settings import Settings


@dataclass
class Runner:
    base: Settings
    plan: Plan
    out: Path
    naive_path: Path | None
    say: Say
    status: Say
    runs: list[Run] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    # FIFO: a variant that finishes a step queues behind the others, so they take turns
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    t0: float = field(default_factory=time.monotonic)

    def _others_cpu_s(self, s: Session) -> float | None:
        # each worker leads its own process group (start_new_session)
        return group_cpu_s({o.proc.pid for o in self.sessions
                            if o is not s and o.proc is not None and o.proc.poll() is None})

    async def step(self, s: Session, messages: Messages, *, rate: float | None, n: int,
                   phase: Phase, load: str = "", expect_rate: float | None = None,
                   drain_timeout: float | None = None) -> Run:
        """One step of ``s``, in its turn."""
        async with self.turn:
            at = time.monotonic()
            cpu0 = await asyncio.to_thread(self._others_cpu_s, s)
            r = await hold(s, messages, rate=rate, n=n, phase=phase, load=load,
                           expect_rate=expect_rate, drain_timeout=drain_timeout)
            cpu1 = await asyncio.to_thread(self._others_cpu_s, s)
            took = time.monotonic() - at
            r.at_s = round(at - self.t0, 1)
            if cpu0 is not None and cpu1 is not None and took > 0:
                r.others_cpu_pct = round(max(0.0, cpu1 - cpu0) / took * 100, 1)
        self.runs.append(r)
        return r
