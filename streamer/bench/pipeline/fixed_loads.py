"""Latency at fixed offered loads, in rounds: low (a share of the naive capacity) for every
variant, high (a share of adaptive's) for ours and the peer, then the extra loads."""

from __future__ import annotations

from streamer.bench.pipeline.messages import Messages
from streamer.bench.pipeline.processes import Session
from streamer.bench.pipeline.results import VariantResult
from streamer.bench.pipeline.turns import Runner


async def latency(runner: Runner, s: Session, messages: Messages, load: str, rate: float,
                  round_: int = 0) -> None:
    """One latency run of ``s`` at ``rate``, recorded as round ``round_`` of ``load``."""
    r = await runner.step(s, messages, rate=rate,
                          n=max(1, round(rate * runner.plan.duration_s)), phase="latency",
                          load=load)
    r.round = round_
    e = r.e2e
    of = f" (round {round_ + 1}/{runner.plan.rounds})" if runner.plan.rounds > 1 else ""
    runner.say(f"[{s.v.name}] {load} load{of} {rate:,.1f} msg/s: p50 {e.p50_ms if e else 0:,.1f} "
               f"ms, p99 {e.p99_ms if e else 0:,.1f} ms, completed {r.completed_rate:,.1f} "
               f"msg/s{'' if r.sustainable else ' (NOT sustainable)'}")


async def measure_latency(runner: Runner, s: Session, result: VariantResult, messages: Messages,
                          low: float, high: float) -> None:
    """Each round: the low load for every variant, the high one for ours and the peer (the
    same loads, whether or not the peer sustains them), then the extra loads."""
    for k in range(runner.plan.rounds):
        await latency(runner, s, messages, "low", low, k)
        if s.v.kind in ("ours", "peer"):
            await latency(runner, s, messages, "high", high, k)
        for extra in runner.plan.loads:
            if extra <= (result.capacity or result.probe_rate or 0.0):
                await latency(runner, s, messages, "extra", extra, k)
