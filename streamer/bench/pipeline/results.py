"""The benchmark's result models (the schema of results.json) and the targets' thresholds.

Pure data: every other module of the package writes or reads these; nothing here measures
or judges.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from streamer.latency.report import StageLatency
from streamer.training.card import Machine

THROUGHPUT_TARGET = 8.0  # ours / naive capacity, at least
PEER_THROUGHPUT_TARGET = 2.0  # ours / the Quix Streams peer's capacity, at least (issue 32)
P99_RATIO_TARGET = 1 / 3  # ours / naive p99 at 50% of the naive capacity, at most
MATCH_TOLERANCE = 0.10  # adaptive "matches" the best fixed setting within 10%

Phase = Literal["probe", "ramp", "latency"]
Kind = Literal["naive", "ours", "peer"]


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
    kind: Kind
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
    kind: Kind
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
    peer: str | None = Field(None, description="The peer variant compared (None: none ran).")
    peer_capacity: float | None = None
    peer_throughput_ratio: float | None = Field(None, description="Ours / the peer's capacity.")
    peer_throughput_met: bool | None = None
    peer_p99_ms: float | None = Field(None, description="The peer's p99 at the low load.")
    peer_p99_ratio: float | None = Field(None, description="Ours / the peer's p99, low load.")
    peer_high_p99_ms: float | None = Field(None, description="The peer's p99 at the high load.")
    ours_high_p99_ms: float | None = None
    peer_p99_met: bool | None = Field(None, description="Ours' p99 at most the peer's at "
                                      "every fixed load both ran.")


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
    peer_threads: int = Field(2, ge=1, description="The Quix Streams peer's ONNX Runtime "
                              "intra-op threads (its one processing thread scores).")
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
    peer: str | None = Field(None, description="What the peer ran: Quix Streams version, "
                             "scorer (None: no peer variant).")
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
