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
BARE_RATIO_TARGET = 0.6  # ours end to end / the bare model at the same batch size, at least
RATE_HZ = 100  # the CPU profile's samples per second

Phase = Literal["probe", "ramp", "latency", "profile"]
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
    batches: int | None = Field(None, description="This project's worker: batches written "
                                "during the step (its /metrics; None: other pipelines).")
    batch_mean: float | None = Field(None, description="This project's worker: mean events "
                                     "per batch during the step.")

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
    bare_variant: str | None = Field(None, description="The variant set against the bare "
                                     "model (adaptive; None: the bare model did not run).")
    bare_ratio: float | None = Field(None, description="Its end-to-end capacity / the bare "
                                     "model's msg/s at its batch size.")
    bare_met: bool | None = None


class BareCell(BaseModel):
    """One size in one round."""

    size: int = Field(description="Messages per batch.")
    round: int = Field(ge=0)
    messages: int = Field(description="Messages scored while the clock ran.")
    seconds: float
    msgs_per_s: float
    tokens_per_msg: float = Field(description="Mean tokens per message (after truncation).")
    tokenize_share: float = Field(
        description="Tokenize / (tokenize + infer) time inside the scorer's calls.")


class BareReport(BaseModel):
    """What ``python -m streamer.bench.pipeline.bare`` writes."""

    scorer: str = Field(description="The scorer's name (provider and variant).")
    model: str = Field(description="The bundle's model, as scored events name it.")
    threads: int = Field(description="Scoring pool threads (= concurrent callers).")
    queue_depth: int
    ort_intra_op_threads: int
    texts: int = Field(description="Distinct messages the batches cycle through.")
    cells: list[BareCell] = Field(default_factory=list)

    def median(self, size: int) -> BareCell | None:
        """The median round of ``size`` by msg/s (the lower middle of an even count)."""
        same = sorted((c for c in self.cells if c.size == size), key=lambda c: c.msgs_per_s)
        return same[(len(same) - 1) // 2] if same else None


class ProfileRow(BaseModel):
    name: str
    samples: int
    share: float = Field(description="Of all the worker's active samples.")


class CpuProfile(BaseModel):
    """One profiled step: where the worker's CPU went, and its latency stages meanwhile."""

    tool: str
    variant: str
    offered_rate: float
    completed_rate: float
    seconds: float
    rate_hz: int = RATE_HZ
    samples: int = Field(description="Active (non-idle) thread samples.")
    waiting: int = Field(0, description="Samples caught waiting (epoll, the executor's queue, "
                         "a lock), left out of the rows: py-spy's idle check, without "
                         "pausing the worker, lets some through.")
    messages: int = Field(0, description="Messages the worker completed during the step.")
    categories: list[ProfileRow] = Field(default_factory=list)
    threads: list[ProfileRow] = Field(default_factory=list,
                                      description="By thread name (MainThread: the event loop).")
    top: list[ProfileRow] = Field(default_factory=list,
                                  description="Innermost Python functions, most samples first.")
    e2e: StageLatency | None = None
    stages: list[StageLatency] = Field(
        default_factory=list, description="The worker's own per-stage stamps during the step.")
    raw: str = Field("", description="py-spy's raw (folded) samples, in the output folder.")

    def us_per_msg(self, samples: int) -> float | None:
        """CPU microseconds per completed message that ``samples`` stand for (each sample
        is 1 / rate_hz s of one thread's time); None when nothing completed."""
        return round(samples / self.rate_hz / self.messages * 1e6, 1) if self.messages else None


class BareRow(BaseModel):
    """A worker variant's end-to-end capacity against the bare model at its batch size."""

    variant: str
    size: int = Field(description="The bare model's batch size.")
    size_from: str = Field(description="Where the size comes from (the fixed setting, or "
                           "the mean batch the worker wrote at its capacity step).")
    observed_batch_mean: float | None = Field(
        None, description="Mean batch the worker wrote at its capacity step (its /metrics).")
    bare_msgs_per_s: float | None = Field(None, description="The bare model, median round.")
    tokens_per_msg: float | None = None
    tokenize_share: float | None = Field(
        None, description="Of the bare model's time: tokenize / (tokenize + infer).")
    e2e_msgs_per_s: float | None = Field(
        None, description="The worker's completed msg/s at its capacity.")
    ratio: float | None = Field(None, description="End to end / bare.")


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
    bare: bool = Field(True, description="Measure the bare model (tokenize + infer alone) at "
                       "the worker variants' batch sizes, after the workers stop.")
    bare_s: float = Field(10.0, gt=0, description="Bare model: hold time per batch size and "
                          "round (rounds: as the latency runs').")
    bare_messages: int = Field(2000, ge=1, description="Bare model: distinct load-generator "
                               "messages its batches cycle through.")
    profile: str | None = Field("adaptive", description="The variant whose worker is profiled "
                                "(py-spy) for one step after the latency runs; None: none.")
    profile_fraction: float = Field(0.9, gt=0, description="The profiled step's load, x that "
                                    "variant's capacity.")

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
    bare_model: BareReport | None = Field(None, description="The bare model's every cell.")
    bare: list[BareRow] = Field(default_factory=list)
    profile: CpuProfile | None = None
    wall_s: float = 0.0
    notes: list[str] = Field(default_factory=list)

    def variant(self, name: str) -> VariantResult | None:
        return next((v for v in self.variants if v.name == name), None)
