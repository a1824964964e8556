"""A variant's capacity: the saturation probe, the ramp of offered loads, then bisection.

The probe's drain rate sizes the ramp: geometric steps from ``ramp_start`` x that rate, each
held ``step_s``; it ends at the first step that is not sustainable (when the very first one
is not, it steps down instead), then bisection steps below that one. The capacity is the
highest sustainable step.
"""

from __future__ import annotations

from streamer.bench.pipeline.errors import BenchError
from streamer.bench.pipeline.messages import Messages
from streamer.bench.pipeline.processes import Session
from streamer.bench.pipeline.results import Run, VariantResult
from streamer.bench.pipeline.turns import Runner
from streamer.bench.pipeline.verdicts import capacity, refine_rate


async def probe(runner: Runner, s: Session, messages: Messages) -> float:
    """Bursts as fast as possible: a first small one (warm-up, and a first estimate for
    sizing), then until one lasts >= half the probe time (3 bursts at most). A batching
    controller needs a long enough backlog to reach its steady batch size."""
    n, rate = 50, None
    for i in range(3):
        r = await runner.step(s, messages, rate=None, n=n, phase="probe", expect_rate=rate,
                              drain_timeout=max(60.0, 8 * runner.plan.probe_s))
        rate = r.completed_rate or rate
        took = n / rate if rate else 0.0
        if rate is None or (i > 0 and took >= runner.plan.probe_s / 2):
            break
        n = int(min(50_000, max(n * 2, rate * runner.plan.probe_s)))
    if not rate:
        raise BenchError(f"the {s.v.name} probe completed nothing ({s.log}):\n{s.tail()}")
    runner.say(f"[{s.v.name}] saturated drain rate about {rate:,.1f} msg/s")
    return rate


async def ramp(runner: Runner, s: Session, messages: Messages, probe_rate: float) -> None:
    """Geometric steps up from ``ramp_start`` x the probe rate until one is not sustainable
    (stepping down instead when the very first is not), then the bisection steps."""
    p = runner.plan
    rate = probe_rate * p.ramp_start
    best: Run | None = None
    down = False
    for _ in range(p.max_steps):
        r = await runner.step(s, messages, rate=rate, n=max(1, round(rate * p.step_s)),
                              phase="ramp")
        v = r.verdict
        runner.say(f"[{s.v.name}] ramp {rate:,.1f} msg/s: completed {r.completed_rate:,.1f} "
                   f"msg/s, p99 {r.p99_ms or 0:,.0f} ms -> "
                   f"{'sustainable' if r.sustainable else 'NOT sustainable'}"
                   f" ({v.reason if v else ''})")
        if r.sustainable:
            best = r
            if down:
                break
            rate *= p.ramp_factor
        elif best is not None:
            break
        else:
            down = True
            rate /= p.ramp_factor ** 2
    await refine(runner, s, messages)


async def refine(runner: Runner, s: Session, messages: Messages) -> None:
    """Bisect (geometrically) between the highest sustainable ramp step and the lowest
    unsustainable one above it: a x1.15 ramp alone knows the capacity to 15%."""
    for _ in range(runner.plan.refine_steps):
        rate = refine_rate(runner.runs, s.v.name)
        if rate is None:
            return
        r = await runner.step(s, messages, rate=rate,
                              n=max(1, round(rate * runner.plan.step_s)), phase="ramp")
        runner.say(f"[{s.v.name}] refine {rate:,.1f} msg/s: completed "
                   f"{r.completed_rate:,.1f} msg/s -> "
                   f"{'sustainable' if r.sustainable else 'NOT sustainable'}")


async def measure_capacity(runner: Runner, s: Session, result: VariantResult,
                           messages: Messages) -> None:
    """Start the worker (in its turn: loading a model is CPU work), probe, ramp."""
    v = s.v
    async with runner.turn:
        runner.say(f"[{v.name}] starting the worker ({v.label})")
        await s.start()
    result.probe_rate = round(await probe(runner, s, messages), 2)
    await ramp(runner, s, messages, result.probe_rate)
    best = capacity(runner.runs, v.name)
    if best is not None:
        result.capacity, result.capacity_completed = best.offered_rate, best.completed_rate
        result.limit_found = any(
            r.variant == v.name and r.phase == "ramp" and not r.sustainable
            and (r.offered_rate or 0.0) > (best.offered_rate or 0.0) for r in runner.runs)
        if not result.limit_found:
            runner.say(f"[{v.name}] every ramp step was sustainable: its capacity, "
                       f"{best.offered_rate:,.1f} msg/s, is a lower bound")
