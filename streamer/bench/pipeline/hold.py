"""The hold loop: one step of one worker, its load sent at a fixed rate (or as one burst).

The paced producer sends while the backlog is sampled; then the drain is awaited, the step
judged, and its latency taken as the difference of the worker's histograms.
"""

from __future__ import annotations

import asyncio

from streamer.bench.load import send_load
from streamer.bench.pipeline.errors import BenchError
from streamer.bench.pipeline.messages import Messages
from streamer.bench.pipeline.processes import PUSH_INTERVAL_S, Session
from streamer.bench.pipeline.results import Phase, Run, Sample
from streamer.bench.pipeline.verdicts import drain_rate, judge
from streamer.latency.histograms import difference
from streamer.latency.report import stage_rows


async def hold(session: Session, messages: Messages, *, rate: float | None, n: int,
               phase: Phase, load: str = "", expect_rate: float | None = None,
               drain_timeout: float | None = None) -> Run:
    """Send ``n`` messages at ``rate`` (None: as fast as possible), sample the backlog,
    wait for the drain; the step's latency is the histograms' difference."""
    plan = session.plan
    outgoing = messages.make(session.settings, n, rate or expect_rate or 200.0)
    duration = n / rate if rate else 0.0
    before = await session.histograms()
    batches0 = await session.batch_stats()
    c0 = await session.completed()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    sender = asyncio.create_task(send_load(session.settings, outgoing, rate=rate))
    samples: list[Sample] = []
    every = plan.sample_s if rate else min(plan.sample_s, 0.25)
    tag = f"[{session.v.name}] {phase}{' ' + load if load else ''} "
    tag += f"{rate:,.1f} msg/s" if rate else f"burst of {n:,}"

    async def sample() -> Sample:
        t = loop.time() - t0
        done = await session.completed() - c0
        scheduled = min(n, int(rate * t)) if rate else n
        s = Sample(t=round(t, 2), done=done, backlog=max(0, scheduled - done))
        samples.append(s)
        session.say(f"{tag}: {t:5.1f} s, completed {done:,}/{n:,}, backlog {s.backlog:,}")
        return s

    while not sender.done():
        await asyncio.wait({sender}, timeout=every)
        if session.proc is not None and session.proc.poll() is not None:
            sender.cancel()
            raise BenchError(f"the {session.v.name} worker died ({session.log}):\n"
                             f"{session.tail()}")
        await sample()
    report = sender.result()
    t_send = loop.time() - t0
    done_at_send = (await sample()).done
    limit = drain_timeout if drain_timeout is not None else max(30.0, 2 * duration)
    drained_s: float | None = None
    while True:
        s = await sample()
        if s.done >= report.sent:
            drained_s = round(max(0.0, s.t - t_send), 2)
            break
        if loop.time() - t0 - t_send > limit:
            break
        if session.proc is not None and session.proc.poll() is not None:
            raise BenchError(f"the {session.v.name} worker died ({session.log}):\n"
                             f"{session.tail()}")
        await asyncio.sleep(every)
    verdict = None
    if rate:
        verdict = judge(samples, rate, duration, drained_s, plan.grace(duration),
                        plan.tolerance)
        # the schedule spans n / rate; the last message leaves one interval earlier
        completed_rate = done_at_send / max(t_send, duration, 1e-9)
    else:
        completed_rate = drain_rate(samples, report.sent) or 0.0
    await asyncio.sleep(PUSH_INTERVAL_S * 2 + 0.3)  # the worker's last histogram push
    rows = stage_rows(difference(await session.histograms(), before))
    batches1 = await session.batch_stats()
    n_batches = batch_mean = None
    if batches0 is not None and batches1 is not None and batches1[1] >= batches0[1]:
        # (fewer than before: the worker restarted mid-step, its counters with it)
        n_batches = round(batches1[1] - batches0[1])
        if n_batches > 0:
            batch_mean = round((batches1[0] - batches0[0]) / n_batches, 2)
    e2e = next((r for r in rows if r.stage == "end_to_end"), None)
    run = Run(variant=session.v.name, kind=session.v.kind, phase=phase, load=load,
              offered_rate=round(rate, 2) if rate else None, duration_s=round(duration, 2),
              sent=report.sent, completed=samples[-1].done if samples else 0,
              completed_rate=round(completed_rate, 2), samples=samples, verdict=verdict,
              e2e=e2e, stages=[r for r in rows if r.stage != "end_to_end"],
              namespace=session.uid, batches=n_batches, batch_mean=batch_mean)
    if drained_s is None:  # a backlog is left: the next step needs an empty pipeline
        session.say(f"[{session.v.name}] backlog did not drain in {limit:.0f} s: restarting "
                    "the worker in a fresh namespace")
        await session.restart()
    return run
