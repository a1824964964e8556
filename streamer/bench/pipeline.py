"""``streamer bench pipeline``: results, the sustainability rule, the targets, the report.

The runs themselves (worker processes, the paced producer, lag sampling) live in
``streamer.bench.pipeline_run``; everything here is pure, so it is unit-tested on its own.

Vocabulary:

* **offered load**: messages per second the open-loop producer schedules (each record's
  timestamp is its intended send time, so a producer that falls behind shows up as
  latency, never as a lower load);
* **completed**: messages whose Redis update is done (ours: the per-partition
  ``consumed`` counters the aggregation script keeps; naive: the sum of its per-label
  counters); **backlog** = scheduled so far - completed;
* **sustainable**: over the second half of a step, the backlog does not keep growing
  (least-squares slope at most ``tolerance`` x the offered rate, and at least 1 msg/s;
  or the backlog stays under one second of offered load), and once the producer stops,
  it drains within ``grace_s``;
* **capacity**: the highest sustainable offered load of the ramp.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from streamer.latency.report import StageLatency
from streamer.training.card import Machine

THROUGHPUT_TARGET = 8.0  # ours / naive capacity, at least
P99_RATIO_TARGET = 1 / 3  # ours / naive p99 at 50% of the naive capacity, at most
MATCH_TOLERANCE = 0.10  # adaptive "matches" the best fixed setting within 10%
DOC_START = "<!-- streamer-bench-pipeline:start -->"
DOC_END = "<!-- streamer-bench-pipeline:end -->"

Phase = Literal["probe", "ramp", "latency"]


class Sample(BaseModel):
    t: float = Field(description="Seconds since the step's first scheduled send.")
    done: int = Field(description="Messages completed (Redis updated) since the step began.")
    backlog: int = Field(description="Scheduled so far minus completed.")


class Verdict(BaseModel):
    sustainable: bool
    slope: float = Field(description="Backlog growth over the step's second half, msg/s.")
    limit: float = Field(description="Largest growth still called flat, msg/s.")
    drained_s: float | None = Field(
        description="Seconds from the producer's end until the backlog was 0 (None: never).")
    reason: str


class Run(BaseModel):
    """One step: a variant at one offered load (or, for a probe, one burst)."""

    variant: str
    kind: Literal["naive", "ours"]
    phase: Phase
    load: str = Field("", description="Latency runs: which fixed load (low, high, extra).")
    round: int = Field(0, ge=0, description="Latency runs: which round, from 0.")
    offered_rate: float | None = Field(description="msg/s scheduled; None: as fast as possible.")
    duration_s: float = Field(description="Scheduled send time (offered runs).")
    sent: int
    completed: int = Field(description="Completed by the end of the drain wait.")
    completed_rate: float = Field(
        description="msg/s completed while the producer ran (probe: the drain rate).")
    samples: list[Sample] = Field(default_factory=list)
    verdict: Verdict | None = None
    e2e: StageLatency | None = None
    stages: list[StageLatency] = Field(default_factory=list)
    namespace: str = ""
    at_s: float | None = Field(None, description="When the step began, seconds into the run.")
    others_cpu_pct: float | None = Field(
        None, description="CPU the other variants' idle workers used during the step, % of "
        "one core (they all run from start to end; None: not measurable here).")

    @property
    def sustainable(self) -> bool:
        return bool(self.verdict and self.verdict.sustainable)

    @property
    def p99_ms(self) -> float | None:
        return self.e2e.p99_ms if self.e2e else None


class VariantResult(BaseModel):
    name: str
    kind: Literal["naive", "ours"]
    label: str
    env: dict[str, str] = Field(default_factory=dict)
    probe_rate: float | None = None
    capacity: float | None = Field(None, description="Highest sustainable offered msg/s.")
    capacity_completed: float | None = Field(
        None, description="Completed msg/s measured at that load.")
    limit_found: bool = Field(
        False, description="A higher ramp step was not sustainable; False: capacity is a "
        "lower bound (the ramp ran out of steps).")
    restarts: int = 0


class Comparison(BaseModel):
    load: str
    rate: float | None
    adaptive_p99_ms: float | None
    best_fixed: str | None
    best_fixed_p99_ms: float | None
    ratio: float | None
    verdict: str
    rounds: int = Field(1, description="Rounds behind each p99 (each variant's median).")
    rounds_lower: int | None = Field(
        None, description="Rounds in which adaptive's p99 was below the best fixed's.")


class Targets(BaseModel):
    naive_capacity: float | None
    ours_capacity: float | None
    throughput_ratio: float | None
    throughput_met: bool | None
    low_rate: float | None
    naive_p99_ms: float | None
    ours_p99_ms: float | None
    p99_ratio: float | None
    p99_met: bool | None
    adaptive_vs_fixed: list[Comparison] = Field(default_factory=list)
    adaptive_capacity_vs_best_fixed: float | None = None


class Plan(BaseModel):
    """How the benchmark runs; every figure is in results.json."""

    variants: list[str]
    step_s: float = Field(30.0, gt=0, description="Ramp step hold time.")
    duration_s: float = Field(30.0, gt=0, description="Latency run hold time.")
    probe_s: float = Field(10.0, gt=0, description="Target length of the saturation probe.")
    ramp_start: float = Field(0.7, gt=0, description="First ramp step, x the probe rate.")
    ramp_factor: float = Field(1.15, gt=1, description="Geometric step of the ramp.")
    max_steps: int = Field(8, ge=1)
    refine_steps: int = Field(2, ge=0, description="Bisection steps after the ramp, between "
                              "its highest sustainable step and the lowest unsustainable one.")
    warmup_s: float = Field(30.0, ge=0, description="The broker's warm-up before the first "
                            "step: the Kafka hop alone at warmup_rate (0: none). A JVM "
                            "compiles its hot paths in its first minutes, at up to 3x the CPU "
                            "per record, and would charge that to the first variant.")
    warmup_rate: float = Field(500.0, gt=0, description="msg/s of the warm-up.")
    low_fraction: float = Field(0.5, gt=0, description="Low load, x the naive capacity.")
    high_fraction: float = Field(0.75, gt=0, description="High load, x ours' capacity.")
    loads: list[float] = Field(default_factory=list, description="Extra fixed loads, msg/s.")
    rounds: int = Field(1, ge=1, description="Latency runs per variant at each fixed load, "
                        "the variants in turns; each variant's median p99 is compared. On a "
                        "noisy machine one run's p99 at a high load moves by 2x or more.")
    grace_s: float | None = Field(None, description="Drain allowance; None: max(3, 10% step).")
    tolerance: float = Field(0.05, gt=0, description="Backlog growth allowed, x rate.")
    sample_s: float = Field(0.5, gt=0)
    latency_target_ms: float = 100.0
    naive_threads: int = 2
    partitions: int = 4
    seed: int = 7
    quick: bool = False

    def grace(self, step_s: float) -> float:
        return self.grace_s if self.grace_s is not None else max(3.0, 0.1 * step_s)


class PipelineBench(BaseModel):
    command: str
    date: str
    machine: Machine
    cpu: str
    plan: Plan
    naive_model: str
    ours_scorer: str
    load_generator: str = Field("aiokafka", description="The producer that sent the load.")
    variants: list[VariantResult]
    runs: list[Run]
    low_rate: float | None = None
    high_rate: float | None = None
    targets: Targets | None = None
    kafka_hop: StageLatency | None = Field(
        None, description="The Kafka hop alone at the low load (sender -> broker -> a plain "
        "consumer, from the intended send time): the floor under every pipeline's latency.")
    wall_s: float = 0.0
    notes: list[str] = Field(default_factory=list)

    def variant(self, name: str) -> VariantResult | None:
        return next((v for v in self.variants if v.name == name), None)


# --- the sustainability rule --------------------------------------------------------------

def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over t (0 with fewer than two distinct t)."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var <= 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in points) / var


def judge(samples: Sequence[Sample], rate: float, duration_s: float, drained_s: float | None,
          grace_s: float, tolerance: float = 0.05, min_backlog_s: float = 1.0) -> Verdict:
    """Sustainable when the backlog is flat over the step's second half and drains within
    ``grace_s`` of the producer's end. Growth counts only once the backlog holds more than
    ``min_backlog_s`` of offered load: a short step's slope is mostly batching noise."""
    half = [(s.t, float(s.backlog)) for s in samples if duration_s / 2 <= s.t <= duration_s]
    growth = slope(half)
    limit = max(1.0, tolerance * rate)
    backlog = half[-1][1] if half else 0.0
    if growth > limit and backlog > rate * min_backlog_s:
        return Verdict(sustainable=False, slope=round(growth, 2), limit=round(limit, 2),
                       drained_s=drained_s,
                       reason=f"backlog grew {growth:.1f} msg/s over the second half "
                       f"(limit {limit:.1f})")
    if drained_s is None or drained_s > grace_s:
        after = "never drained" if drained_s is None else f"drained in {drained_s:.1f} s"
        return Verdict(sustainable=False, slope=round(growth, 2), limit=round(limit, 2),
                       drained_s=drained_s,
                       reason=f"backlog {after} after the producer stopped (grace {grace_s:g} s)")
    return Verdict(sustainable=True, slope=round(growth, 2), limit=round(limit, 2),
                   drained_s=drained_s,
                   reason=f"flat backlog ({growth:+.1f} msg/s), drained in {drained_s:.1f} s")


def drain_rate(samples: Sequence[Sample], total: int) -> float | None:
    """msg/s completed between 10% and 90% of ``total`` (a probe's saturated rate)."""
    lo = next((s for s in samples if s.done >= 0.1 * total), None)
    hi = next((s for s in samples if s.done >= 0.9 * total), None)
    if lo is None or hi is None or hi.t <= lo.t:
        last = samples[-1] if samples else None
        return total / last.t if last is not None and last.t > 0 and last.done >= total else None
    return (hi.done - lo.done) / (hi.t - lo.t)


def capacity(runs: Sequence[Run], variant: str) -> Run | None:
    """The ramp's highest sustainable step of ``variant``."""
    ok = [r for r in runs if r.variant == variant and r.phase == "ramp" and r.sustainable
          and r.offered_rate is not None]
    return max(ok, key=lambda r: r.offered_rate or 0.0) if ok else None


def refine_rate(runs: Sequence[Run], variant: str) -> float | None:
    """The geometric midpoint between ``variant``'s highest sustainable ramp step and the
    lowest unsustainable one above it; None without such a bracket."""
    best = capacity(runs, variant)
    if best is None or best.offered_rate is None:
        return None
    lo = best.offered_rate
    above = [r.offered_rate for r in runs if r.variant == variant and r.phase == "ramp"
             and not r.sustainable and r.offered_rate is not None and r.offered_rate > lo]
    return (lo * min(above)) ** 0.5 if above else None


def latency_runs(runs: Sequence[Run], variant: str, load: str) -> list[Run]:
    return [r for r in runs if r.variant == variant and r.phase == "latency" and r.load == load]


def latency_run(runs: Sequence[Run], variant: str, load: str) -> Run | None:
    """``variant``'s run at ``load``: of several rounds, the one with the median p99 (the
    lower middle one of an even count), so that one bad minute of the machine decides
    nothing."""
    return next((r for r in median_runs(runs, variant) if r.load == load), None)


def median_runs(runs: Sequence[Run], variant: str) -> list[Run]:
    """``variant``'s latency runs, one per fixed load and rate: the median round of each."""
    groups: dict[tuple[str, float | None], list[Run]] = {}
    for r in runs:
        if r.variant == variant and r.phase == "latency":
            groups.setdefault((r.load, r.offered_rate), []).append(r)
    out = []
    for same in groups.values():
        measured = sorted((r for r in same if r.p99_ms is not None),
                          key=lambda r: r.p99_ms or 0.0)
        out.append(measured[(len(measured) - 1) // 2] if measured else same[0])
    return out


def rounds_lower(runs: Sequence[Run], a: str, b: str, load: str) -> int | None:
    """In how many rounds ``a``'s p99 was below ``b``'s; None when no round has both."""
    theirs = {r.round: r.p99_ms for r in latency_runs(runs, b, load)}
    pairs = [(r.p99_ms, theirs[r.round]) for r in latency_runs(runs, a, load)
             if r.round in theirs]
    both = [(x, y) for x, y in pairs if x is not None and y is not None]
    return sum(x < y for x, y in both) if both else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def compare(runs: Sequence[Run], variants: Sequence[VariantResult], load: str,
            adaptive: str = "adaptive") -> Comparison:
    """Adaptive's p99 against the best (lowest p99) fixed setting's at one fixed load."""
    mine = latency_run(runs, adaptive, load)
    fixed = [r for v in variants if v.kind == "ours" and v.name.startswith("fixed")
             if (r := latency_run(runs, v.name, load)) is not None and r.p99_ms is not None]
    best = min(fixed, key=lambda r: (not r.sustainable, r.p99_ms or 0.0), default=None)
    a = mine.p99_ms if mine else None
    b = best.p99_ms if best else None
    ratio = _ratio(a, b)
    if ratio is None:
        verdict = "not measured"
    elif mine is not None and not mine.sustainable and best is not None and best.sustainable:
        verdict = "worse (adaptive not sustainable)"
    elif ratio < 1.0:
        verdict = "beats"
    elif ratio <= 1.0 + MATCH_TOLERANCE:
        verdict = "matches"
    else:
        verdict = "worse"
    return Comparison(load=load, rate=mine.offered_rate if mine else None, adaptive_p99_ms=a,
                      best_fixed=best.variant if best else None, best_fixed_p99_ms=b,
                      ratio=ratio, verdict=verdict,
                      rounds=len(latency_runs(runs, adaptive, load)) or 1,
                      rounds_lower=rounds_lower(runs, adaptive, best.variant, load)
                      if best else None)


def targets(runs: Sequence[Run], variants: Sequence[VariantResult], low_rate: float | None,
            ours: str = "adaptive") -> Targets:
    naive = next((v for v in variants if v.kind == "naive"), None)
    mine = next((v for v in variants if v.name == ours), None)
    n_cap = naive.capacity_completed if naive else None
    o_cap = mine.capacity_completed if mine else None
    t_ratio = _ratio(o_cap, n_cap)
    naive_low = latency_run(runs, naive.name, "low") if naive else None
    ours_low = latency_run(runs, ours, "low")
    p_ratio = _ratio(ours_low.p99_ms if ours_low else None,
                     naive_low.p99_ms if naive_low else None)
    fixed_caps = [v.capacity_completed for v in variants
                  if v.name.startswith("fixed") and v.capacity_completed]
    return Targets(
        naive_capacity=n_cap, ours_capacity=o_cap, throughput_ratio=t_ratio,
        throughput_met=None if t_ratio is None else t_ratio >= THROUGHPUT_TARGET,
        low_rate=low_rate,
        naive_p99_ms=naive_low.p99_ms if naive_low else None,
        ours_p99_ms=ours_low.p99_ms if ours_low else None,
        p99_ratio=p_ratio,
        p99_met=None if p_ratio is None else p_ratio <= P99_RATIO_TARGET + 1e-9,
        adaptive_vs_fixed=[compare(runs, variants, load, ours) for load in ("low", "high")],
        adaptive_capacity_vs_best_fixed=_ratio(o_cap, max(fixed_caps, default=None)),
    )


# --- the report ---------------------------------------------------------------------------

def _n(v: float | None, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _met(v: bool | None) -> str:
    return "-" if v is None else ("**met**" if v else "**NOT met**")


def target_lines(b: PipelineBench) -> list[str]:
    t = b.targets
    if t is None:
        return []
    lines = [
        "| target | measured | goal | result |",
        "|---|---|---|---|",
        f"| end-to-end throughput, ours (adaptive) / naive | {_n(t.ours_capacity)} / "
        f"{_n(t.naive_capacity)} msg/s = **{_n(t.throughput_ratio, '.1f')}x** | >= "
        f"{THROUGHPUT_TARGET:g}x | {_met(t.throughput_met)} |",
        f"| p99 end to end at {_n(t.low_rate, '.1f')} msg/s (50% of naive capacity), ours / "
        f"naive | {_ms(t.ours_p99_ms)} / {_ms(t.naive_p99_ms)} ms = "
        f"**{_n(t.p99_ratio, '.3f')}** | <= 1/3 | {_met(t.p99_met)} |",
    ]
    for c in t.adaptive_vs_fixed:
        median = ""
        if c.rounds > 1:
            median = f", medians of {c.rounds} rounds"
            if c.rounds_lower is not None:
                median += f"; adaptive lower in {c.rounds_lower} of them"
        lines.append(
            f"| adaptive vs best fixed, p99 at {c.load} load ({_n(c.rate, '.1f')} msg/s) | "
            f"{_ms(c.adaptive_p99_ms)} vs {_ms(c.best_fixed_p99_ms)} ms ({c.best_fixed or '-'})"
            f" = {_n(c.ratio, '.2f')}{median} | matches (<= {1 + MATCH_TOLERANCE:.2f}) or "
            f"beats | **{c.verdict}** |")
    if (h := b.kafka_hop) is not None:
        lines.append(f"| the Kafka hop alone at {_n(t.low_rate, '.1f')} msg/s (no pipeline), "
                     f"p50 / p99 | {_ms(h.p50_ms)} / {_ms(h.p99_ms)} ms | (information: the "
                     f"floor under both pipelines) | - |")
    if t.adaptive_capacity_vs_best_fixed is not None:
        lines.append(f"| adaptive capacity / best fixed capacity | "
                     f"{t.adaptive_capacity_vs_best_fixed:.2f} | (information) | - |")
    return lines


def capacity_lines(b: PipelineBench) -> list[str]:
    naive = next((v for v in b.variants if v.kind == "naive"), None)
    lines = ["| variant | what | saturated (probe) msg/s | max sustainable offered msg/s | "
             "completed msg/s there | x naive |", "|---|---|---:|---:|---:|---:|"]
    for v in b.variants:
        x = _ratio(v.capacity_completed, naive.capacity_completed if naive else None)
        at_least = "" if v.limit_found or v.capacity is None else ">= "
        lines.append(f"| {v.name} | {v.label} | {_n(v.probe_rate)} | "
                     f"{at_least}{_n(v.capacity, ',.1f')} | "
                     f"{_n(v.capacity_completed, ',.1f')} | {_n(x, '.1f')} |")
    return lines


def _load(b: PipelineBench, r: Run) -> str:
    return f"{r.load} #{r.round + 1}" if b.plan.rounds > 1 else r.load


def latency_lines(b: PipelineBench) -> list[str]:
    lines = ["| variant | load | offered msg/s | completed msg/s | sustainable | p50 ms | p90 ms "
             "| p99 ms | p99.9 ms | max ms |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in b.runs:
        if r.phase != "latency":
            continue
        e = r.e2e
        lines.append(
            f"| {r.variant} | {_load(b, r)} | {_n(r.offered_rate, ',.1f')} | "
            f"{_n(r.completed_rate, ',.1f')} | {'yes' if r.sustainable else 'no'} | "
            f"{_ms(e.p50_ms if e else None)} | {_ms(e.p90_ms if e else None)} | "
            f"{_ms(e.p99_ms if e else None)} | {_ms(e.p999_ms if e else None)} | "
            f"{_ms(e.max_ms if e else None)} |")
    return lines


def stage_lines(b: PipelineBench) -> list[str]:
    names = ["kafka", "batch_wait", "tokenize", "infer", "aggregate"]
    lines = ["| variant | load | " + " | ".join(f"{n.replace('_', ' ')} p99 ms (mean share)"
                                             for n in names) + " |",
             "|---|---|" + "---:|" * len(names)]
    for r in b.runs:
        if r.phase != "latency" or r.kind != "ours" or not r.stages:
            continue
        by = {s.stage: s for s in r.stages}
        cells = []
        for n in names:
            s = by.get(n)
            share = f" ({s.share_mean:.0%})" if s and s.share_mean is not None else ""
            cells.append(f"{_ms(s.p99_ms)}{share}" if s else "-")
        lines.append(f"| {r.variant} | {_load(b, r)} | " + " | ".join(cells) + " |")
    return lines


def ramp_lines(b: PipelineBench) -> list[str]:
    lines = ["| at min | variant | step | offered msg/s | sent | completed msg/s | backlog slope "
             "msg/s | drained s | sustainable | p99 ms |",
             "|---:|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in b.runs:
        if r.phase == "latency":
            continue
        v = r.verdict
        drained = v.drained_s if v else None
        at = None if r.at_s is None else r.at_s / 60
        lines.append(
            f"| {_n(at, '.1f')} | {r.variant} | {r.phase} | {_n(r.offered_rate, ',.1f')} | "
            f"{r.sent:,} | "
            f"{_n(r.completed_rate, ',.1f')} | {_n(v.slope if v else None, '+.2f')} | "
            f"{_n(drained, '.1f')} | {'-' if v is None else ('yes' if v.sustainable else 'no')} "
            f"| {_ms(r.p99_ms)} |")
    return lines


def header_lines(b: PipelineBench) -> list[str]:
    return [
        f"Command: `{b.command}`  ",
        f"Machine: {b.cpu}, {b.machine.cpu_count} cores, {b.machine.system}; {b.date}  ",
        f"Naive pipeline: Faust agent, one message per call, {b.naive_model}, torch threads "
        f"{b.plan.naive_threads}, one Redis HINCRBY per message, at_least_once  ",
        f"This project's pipeline: `streamer worker` ({b.ours_scorer}), one worker per variant  ",
        f"Load generator: {b.load_generator}, open loop, latency from the intended send time  ",
        f"Ramp: probe, then steps x{b.plan.ramp_factor:g} from {b.plan.ramp_start:g} x the probe "
        f"rate, {b.plan.step_s:g} s each, then {b.plan.refine_steps} bisection step(s) below "
        f"the first that failed; latency runs {b.plan.duration_s:g} s{_rounds(b.plan)}; low "
        f"load = "
        f"{b.plan.low_fraction:.0%} of the naive capacity ({_n(b.low_rate, '.1f')} msg/s), high = "
        f"{b.plan.high_fraction:.0%} of ours' ({_n(b.high_rate, '.1f')} msg/s); wall "
        f"{b.wall_s / 60:.1f} min  ",
        f"Warm-up: {_warmup(b.plan)}  ",
        f"Turns: every variant's worker runs from start to end and the variants take turns, one "
        f"step each (round robin: capacities first, then the fixed loads), so their steps "
        f"share the same minutes of the machine; {idle_cpu(b)}  ",
    ]


def _rounds(p: Plan) -> str:
    if p.rounds <= 1:
        return ""
    return (f", {p.rounds} rounds at each load (the variants in turns; a variant's p99 in "
            "the targets is its median round's)")


def _warmup(p: Plan) -> str:
    if p.warmup_s <= 0:
        return "none (the broker may still be compiling during the first steps)"
    return (f"the Kafka hop alone at {p.warmup_rate:,.0f} msg/s for {p.warmup_s:g} s before "
            "the first step, so that the broker's JIT warm-up is not charged to a variant")


def idle_cpu(b: PipelineBench) -> str:
    """How much the waiting workers took from the one being measured."""
    pct = sorted(r.others_cpu_pct for r in b.runs if r.others_cpu_pct is not None)
    if not pct:
        return "the waiting workers' CPU was not measured"
    return (f"the waiting workers used {pct[len(pct) // 2]:.1f}% of a core (median step; "
            f"max {pct[-1]:.1f}%) while another was measured")


def markdown(b: PipelineBench) -> str:
    lines = [f"# End-to-end pipeline benchmark ({b.date})", "", *header_lines(b), "",
             "## Targets", "", *target_lines(b), "",
             "## Maximum sustainable throughput", "", *capacity_lines(b), "",
             "## End-to-end latency at fixed offered loads", "", *latency_lines(b), "",
             "## Per stage (ours)", "", *stage_lines(b), "",
             "## Every step", "", *ramp_lines(b), "",
             "## Rules", "",
             f"- sustainable: backlog (scheduled - Redis-updated) slope over the step's second "
             f"half <= max(1, {b.plan.tolerance:g} x rate) msg/s (or the backlog under 1 s of "
             f"load), and drained within "
             f"{b.plan.grace(b.plan.step_s):g} s of the producer's end",
             "- end to end: Redis updated minus the record's timestamp (= its intended send "
             "time: open loop, no coordinated omission); HDR histograms, merged per step",
             f"- adaptive matches the best fixed setting when its p99 is within "
             f"{MATCH_TOLERANCE:.0%}",
             "", "![latency vs load](latency_vs_load.png)", "",
             "![throughput ramp](throughput_ramp.png)", "",
             *(f"- {n}" for n in b.notes)]
    return "\n".join(lines).rstrip() + "\n"


def docs_section(b: PipelineBench, out: Path) -> str:
    """The dated summary for docs/BENCHMARKS.md, between markers (a re-run replaces it)."""
    lines = [DOC_START,
             f"## {b.date[:10]} — end-to-end pipeline: naive vs this project's "
             "(Kafka in, Redis updated; one run)", "", *header_lines(b), "",
             *target_lines(b), "", *capacity_lines(b), "", *latency_lines(b), "",
             f"Full report, every ramp step and the plots: `{out}/report.md` (results.json, "
             "latency_vs_load.png, throughput_ramp.png).",
             *(["", *(f"- {n}" for n in b.notes)] if b.notes else []),
             DOC_END]
    return "\n".join(lines) + "\n"


def update_doc(doc: Path, section: str) -> None:
    """Replace the previous pipeline section, or put this one first (newest first)."""
    text = doc.read_text("utf-8") if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(DOC_START) + r".*?" + re.escape(DOC_END) + r"\n?", re.S)
    m = pattern.search(text)
    if m is not None:  # the newest goes first: take the old one out, blank lines too
        text = text[:m.start()].rstrip("\n") + "\n\n" + text[m.end():].lstrip("\n")
    at = text.find("\n## ")
    text = (text.rstrip("\n") + "\n\n" + section) if at < 0 else (
        text[:at + 1] + section + "\n" + text[at + 1:])
    doc.write_text(text, "utf-8")


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def write(b: PipelineBench, out: Path) -> list[Path]:
    """results.json, report.md and the plots in ``out``."""
    from streamer.bench.pipeline_plots import write_plots

    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "results.json", out / "report.md"
    js.write_text(b.model_dump_json(indent=2), "utf-8")
    md.write_text(markdown(b), "utf-8")
    return [js, md, *write_plots(b, out)]


__all__ = [
    "PipelineBench",
    "Plan",
    "Run",
    "Sample",
    "Targets",
    "VariantResult",
    "judge",
    "markdown",
    "targets",
    "update_doc",
    "write",
]
