"""Everything a worker process holds besides the Faust app itself."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from agents.commit_gate import CommitGate
from agents.health import HealthMonitor, KafkaProbe
from streamer.aggregate import TrendStore
from streamer.batch import BatchProcessor
from streamer.keys import safe_name
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
    pending: dict[tuple[str, int, int], float] = field(default_factory=dict)

    def put(self, key: tuple[str, int, int], ms: float) -> None:
        if len(self.pending) >= _MAX_PENDING_STAMPS:
            self.pending.pop(next(iter(self.pending)))
        self.pending[key] = ms

    def pop(self, key: tuple[str, int, int]) -> float | None:
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
        latency = LatencyRecorder()
        store = TrendStore.connect(settings.redis, settings.aggregate)
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
        host = safe_name(socket.gethostname(), fallback="host")
        worker_id = settings.worker.id or f"{host}-{os.getpid()}"
        probe_kafka = KafkaProbe(settings.kafka, settings.health.probe_timeout_s)
        health = HealthMonitor(settings.health, {"kafka": probe_kafka, "redis": store.ping})
        return cls(
            settings, store, processor, pool, metrics, clock, latency, health, watcher,
            worker_id=worker_id,
        )
