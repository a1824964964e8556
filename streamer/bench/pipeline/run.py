"""Run ``streamer bench pipeline`` from start to end: the entry the CLI calls.

Per variant, one worker process in its own namespace (topics, consumer group, Redis
prefix: runs never mix), started once and kept warm to the end; the variants take turns,
one step at a time (``turns``).

1. Capacities, every variant in turn: a saturation probe, a ramp of offered loads, then
   bisection (``ramp``).
2. Latency at fixed loads, every variant in turn: low = ``low_fraction`` x the naive
   capacity (the target comparison), high = ``high_fraction`` x ours' (adaptive)
   capacity (ours and the Quix Streams peer), then the extra loads (``fixed_loads``).
3. Where the time goes: one more step of ``plan.profile`` (adaptive) at
   ``profile_fraction`` x its capacity with py-spy attached (``profile``).
4. Once the workers are stopped: the bare model (tokenize + infer alone) at each of ours'
   batch sizes (``bare``), set against their end-to-end capacities.

Latency per step comes from the worker's HDR histograms in Redis: a snapshot before and
after the step, subtracted (``hold``). A step that leaves a backlog which does not drain in
time gets the worker restarted in a fresh namespace, so the next step starts empty. The
waiting workers' CPU during each step is recorded (``Run.others_cpu_pct``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from pathlib import Path

from streamer.bench.kafka_hop import kafka_hop
from streamer.bench.load import generator
from streamer.bench.pipeline.errors import BenchError
from streamer.bench.pipeline.fixed_loads import measure_latency
from streamer.bench.pipeline.messages import Messages
from streamer.bench.pipeline.preflight import (
    check_stack,
    naive_bundle,
    ours_scorer,
    peer_model,
    pin_bundle,
)
from streamer.bench.pipeline.processes import Say, Session
from streamer.bench.pipeline.ramp import measure_capacity
from streamer.bench.pipeline.results import (
    BareReport,
    CpuProfile,
    PipelineBench,
    Plan,
    VariantResult,
)
from streamer.bench.pipeline.turns import Runner
from streamer.bench.pipeline.variants import variant
from streamer.bench.pipeline.verdicts import bare_rows, bare_sizes, bare_targets, targets
from streamer.settings import Settings


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


async def side_by_side(coros: Iterable[Coroutine[object, object, None]]) -> None:
    """Run the variants' coroutines together; the first failure stops the others and is
    raised as itself (a BenchError keeps its message for the person at the terminal)."""
    try:
        async with asyncio.TaskGroup() as tg:
            for c in coros:
                tg.create_task(c)
    except ExceptionGroup as eg:
        raise eg.exceptions[0] from None


async def run_pipeline_bench(base: Settings, plan: Plan, out: Path, *, command: str,
                             naive_path: Path | None = None, say: Say | None = None,
                             status: Say | None = None) -> PipelineBench:
    from streamer.bench.models import _cpu_model
    from streamer.training.card import machine_info

    say = say or (lambda _m: None)
    status = status or (lambda _m: None)
    variants = [variant(n, plan.latency_target_ms) for n in plan.variants]
    names = [v.name for v in variants]
    if "naive" not in names or "adaptive" not in names:
        raise BenchError("--variants must include naive and adaptive (the targets compare them)")
    peer = peer_model(base) if any(v.kind == "peer" for v in variants) else None
    await check_stack(base)
    base = pin_bundle(base)  # every worker, the peer and the bare model: the same model
    bundle, naive_model, notes = naive_bundle(base, naive_path)
    if peer is not None and base.scoring.scorer in ("baseline", "torch"):
        notes.append(f"this project's worker scored with STREAMER_SCORER={base.scoring.scorer}, "
                     "the peer with the bundle's ONNX model: the model differs between them")
    # naive first, then adaptive: the order of their first turns
    variants.sort(key=lambda v: (v.name != "naive", v.name != "adaptive"))
    runner = Runner(base, plan, out, bundle, say, status)
    results = [VariantResult(name=v.name, kind=v.kind, label=v.label, env=v.env)
               for v in variants]
    runner.sessions = [Session(base, v, plan, out / "logs", bundle, status) for v in variants]
    pairs = list(zip(runner.sessions, results, strict=True))
    messages = Messages(plan.seed)
    if plan.warmup_s > 0:
        status(f"warming the broker up: {plan.warmup_rate:,.0f} msg/s for {plan.warmup_s:g} s")
        n = max(1, round(plan.warmup_rate * plan.warmup_s))
        try:
            await kafka_hop(base, [m.value for m in messages.make(base, n, plan.warmup_rate)],
                            plan.warmup_rate, timeout_s=max(30.0, plan.warmup_s))
        except Exception as exc:
            raise BenchError(f"the broker's warm-up failed ({exc!r}): check Kafka at "
                             f"{base.kafka.bootstrap}, or skip it with --warmup-s 0") from exc
    runner.t0 = time.monotonic()
    profile: CpuProfile | None = None
    try:
        await side_by_side(measure_capacity(runner, s, res, messages) for s, res in pairs)
        # the low load is a share of the naive capacity, the high one of adaptive's
        naive, mine = results[0], results[1]
        low = round(plan.low_fraction * (naive.capacity or naive.probe_rate or 0.0), 2)
        high = round(plan.high_fraction * (mine.capacity or mine.probe_rate or 0.0), 2)
        await side_by_side(measure_latency(runner, s, res, messages, low, high)
                           for s, res in pairs)
        profile = await profile_worker(runner, pairs, messages, out, notes)
    finally:
        for s, res in pairs:
            res.restarts = max(0, s.restarts)
            await s.stop()
    bare: BareReport | None = None
    sizes = sorted({size for _, size, _, _ in bare_sizes(runner.runs, results)})
    if plan.bare and sizes:
        from streamer.bench.pipeline.bare import run_bare

        status(f"the bare model (tokenize + infer alone) at batch sizes "
               f"{', '.join(map(str, sizes))}")
        try:
            bare = await run_bare(base, plan, sizes, out)
        except BenchError as exc:  # the other rows stand without it
            notes.append(f"the bare model was not measured: {exc}")
        if bare is not None:
            say("the bare model: " + ", ".join(
                f"batch {n} {c.msgs_per_s:,.0f} msg/s" for n in sizes
                if (c := bare.median(n)) is not None))
    hop = None
    if low:
        status(f"the Kafka hop alone at {low:,.1f} msg/s")
        n = max(1, round(low * plan.duration_s))
        try:
            hop = await kafka_hop(base, [m.value for m in messages.make(base, n, low)], low)
        except Exception as exc:  # information only: the pipelines' figures stand without it
            notes.append(f"the Kafka hop alone was not measured: {exc!r}")
        if hop is not None:
            say(f"the Kafka hop alone at {low:,.1f} msg/s: p50 {hop.p50_ms:,.1f} ms, "
                f"p99 {hop.p99_ms:,.1f} ms")
    for r in results:
        if r.capacity is not None and not r.limit_found:
            notes.append(f"{r.name}: every ramp step was sustainable (--max-steps "
                         f"{plan.max_steps}): its capacity is a lower bound")
        if r.capacity is None:
            notes.append(f"{r.name}: no ramp step was sustainable; its fixed loads used the "
                         "probe's drain rate instead of a capacity")
    if any(r.restarts for r in results):
        notes.append("a step left a backlog that did not drain: its worker was restarted in a "
                     "fresh namespace (restarts: " + ", ".join(
                         f"{r.name} {r.restarts}" for r in results if r.restarts) + ")")
    bench = PipelineBench(
        command=command, date=today(), machine=machine_info(), cpu=_cpu_model(), plan=plan,
        naive_model=naive_model, ours_scorer=ours_scorer(base), peer=peer,
        load_generator=generator(base),
        variants=results,
        runs=runner.runs, low_rate=low, high_rate=high, kafka_hop=hop,
        bare_model=bare, bare=bare_rows(runner.runs, results, bare) if bare else [],
        profile=profile, wall_s=round(time.monotonic() - runner.t0, 1), notes=notes,
    )
    bench.targets = targets(bench.runs, bench.variants, low).model_copy(
        update=bare_targets(bench.bare))
    return bench


async def profile_worker(runner: Runner, pairs: list[tuple[Session, VariantResult]],
                         messages: Messages, out: Path, notes: list[str]) -> CpuProfile | None:
    """The profiled step of ``plan.profile``'s worker (None: not asked for, or no py-spy)."""
    from streamer.bench.pipeline.profile import profile_step, pyspy

    name = runner.plan.profile
    if not name:
        return None
    pair = next(((s, r) for s, r in pairs if s.v.name == name and s.v.kind == "ours"), None)
    if pair is None:
        notes.append(f"no CPU profile: {name} is not one of this project's variants here")
        return None
    if pyspy() is None:
        notes.append("no CPU profile: py-spy is not installed (the dev extra; "
                     ".venv/bin/pip install py-spy)")
        return None
    s, res = pair
    rate = runner.plan.profile_fraction * (res.capacity or res.probe_rate or 0.0)
    if rate <= 0:
        return None
    runner.status(f"[{name}] CPU profile: {rate:,.1f} msg/s for {runner.plan.step_s:g} s "
                  "with py-spy attached")
    profile = await profile_step(runner, s, messages, rate, out)
    if profile is None:
        notes.append(f"no CPU profile: py-spy did not record {name}'s worker (the log above "
                     "says why)")
    return profile
