"""Everything a worker process holds besides the Faust app itself."""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.commit_gate import CommitGate
from agents.health import HealthMonitor, KafkaProbe
from agents.worker import default_worker_id
from streamer.aggregate import TrendStore
from streamer.batch import BatchProcessor
from streamer.latency import Clock, LatencyRecorder
from streamer.metrics import Metrics
from streamer.score import Scorer
from streamer.score.pool import ScoringPool
from streamer.score.select import bundle_scorer
from streamer.score.watch import ModelWatcher
from streamer.settings import Settings

# Consume stamps wait here from the moment Faust receives a record until its batch
# is processed; the bound only matters if a partition is revoked with records queued.
_MAX_PENDING_STAMPS = 500_000


@dataclass
class ConsumeStamps:
    """Per record: when the agent's stream took it ('consumed') and when that stream had
    last become ready for a record before ('ready': it had finished with the one before).

    Between the record's timestamp and 'ready' the record waited in Kafka (or the
    consumer's buffers) because the worker was busy: the 'queue' stage; from the later
    of the two to 'consumed' it was in transit: the 'kafka' stage (streamer/latency)."""

    pending: dict[tuple[str, int, int], tuple[float, float]] = field(default_factory=dict)
    # Per input topic (one stream each): when its stream last became ready for a record.
    ready: dict[str, float] = field(default_factory=dict)
    # Before a stream's first record: ready since the worker started.
    started_ms: float | None = None

    def put(self, key: tuple[str, int, int], ms: float) -> None:
        if len(self.pending) >= _MAX_PENDING_STAMPS:
            self.pending.pop(next(iter(self.pending)))
        ready = self.ready.get(key[0], self.started_ms if self.started_ms is not None else ms)
        self.pending[key] = (ms, min(ready, ms))

    def mark_ready(self, topic: str, ms: float) -> None:
        """The topic's stream is done with its record and takes the next one now."""
        self.ready[topic] = ms

    def pop(self, key: tuple[str, int, int]) -> tuple[float, float] | None:
        """(consumed, ready) of the record, or None when it was not stamped."""
        return self.pending.pop(key, None)


@dataclass
class Runtime:
    settings: Settings
    store: TrendStore
    processor: BatchProcessor
    pool: ScoringPool
    metrics: Metrics
    clock: Clock
    latency: LatencyRecorder
    health: HealthMonitor
    watcher: ModelWatcher
    gate: CommitGate = field(default_factory=CommitGate)
    stamps: ConsumeStamps = field(default_factory=ConsumeStamps)
    worker_id: str = ""
    warm: bool = False
    # Why the worker stopped itself when a restart cannot help (the supervisor's cue).
    needs_operator: str | None = None

    @property
    def scorer(self) -> Scorer:
        """The live scorer. Only the pool holds it, so that a model upgrade frees the old one."""
        return self.pool.scorer

    @classmethod
    def build(cls, settings: Settings, scorer: Scorer) -> Runtime:
        clock = Clock()
        metrics = Metrics()
        # Every stage duration the HDR histograms record is also observed on /metrics.
        latency = LatencyRecorder(observer=metrics.observe_stage,
                                  slice_s=settings.worker.latency_slice_s)
        store = TrendStore.connect(settings.redis, settings.aggregate,
                                   on_retry=metrics.redis_retries.inc)
        scoring = settings.scoring
        pool = ScoringPool(scorer, threads=scoring.infer_threads,
                           queue_depth=scoring.score_queue_depth, gauge=metrics.score_in_flight)
        processor = BatchProcessor(
            settings.input, settings.topics, pool, store, clock=clock, metrics=metrics,
            latency=latency,
        )
        metrics.show_live(scorer.name, scorer.model)
        watcher = ModelWatcher(settings, pool, lambda path: bundle_scorer(settings, path),
                               metrics)
        # It names a Redis key (latency histograms): the same bounded alphabet as the
        # setting's pattern, whatever the host name holds.
        worker_id = default_worker_id(settings.worker.id)
        probe_kafka = KafkaProbe(settings.kafka, settings.health.probe_timeout_s)
        health = HealthMonitor(settings.health, {"kafka": probe_kafka, "redis": store.ping})
        return cls(
            settings, store, processor, pool, metrics, clock, latency, health, watcher,
            worker_id=worker_id,
        )
