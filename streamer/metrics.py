"""Prometheus metrics of one worker, in their own registry (no global side effects)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from streamer.latency.histograms import END_TO_END, STAGES
from streamer.schemas.events import ModelRef

# Per-stage latency buckets: 1-1.5-2-3-5-7.5 in every decade from 1 ms to 10 s (no two
# neighbours more than 1.7x apart, so histogram_quantile's interpolation inside a bucket
# is off by less than that), two below 1 ms for the sub-millisecond stages (tokenize),
# and a tail to a minute for backlog.
_LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.00025, 0.0005,
    *(round(m * 10.0 ** e, 6) for e in range(-3, 1) for m in (1.0, 1.5, 2.0, 3.0, 5.0, 7.5)),
    10.0, 20.0, 30.0, 60.0,
)
# Every name streamer_stage_seconds carries in its ``stage`` label.
STAGE_NAMES: tuple[str, ...] = (*(name for name, _, _ in STAGES), END_TO_END[0])


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # process_resident_memory_bytes and CPU seconds: the worker's memory budget is watched.
        ProcessCollector(registry=r)
        self.consumed = Counter(
            "streamer_consumed", "Input records consumed", ["topic"], registry=r
        )
        self.scored = Counter("streamer_scored", "Events scored", ["topic"], registry=r)
        self.dead = Counter(
            "streamer_dead_lettered", "Records dead-lettered", ["topic", "reason"], registry=r
        )
        self.tickers_dropped = Counter(
            "streamer_tickers_dropped",
            "Publisher-given tickers left out of an event (reason: unknown_symbol, not in "
            "the symbol list)", ["topic", "reason"], registry=r,
        )
        self.unknown_fields = Counter(
            "streamer_unknown_fields", "Input records accepted with fields their schema "
            "does not know, which were ignored (STREAMER_SCHEMA_STRICT=true dead-letters "
            "them instead)", ["topic"], registry=r,
        )
        self.duplicates = Counter(
            "streamer_replayed_skipped",
            "Records skipped in Redis because their offset was already applied",
            ["topic"],
            registry=r,
        )
        self.batch_size = Histogram(
            "streamer_batch_size", "Events per micro-batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r,
        )
        self.stage_seconds = Histogram(
            "streamer_stage_seconds", "Per-event latency of each stage (queue: waiting in "
            "Kafka for a busy worker; kafka: the hop to a ready worker; batch_wait, "
            "tokenize, infer, aggregate) and end_to_end (Kafka record timestamp to Redis "
            "ack), observed for every scored event", ["stage"],
            buckets=_LATENCY_BUCKETS_S, registry=r,
        )
        # Each stage's series exists from the start (count 0), so that a dashboard or rule
        # sees the worker's stages before its first event rather than no data.
        self._stage_children = {name: self.stage_seconds.labels(name) for name in STAGE_NAMES}
        self.sentiment = Counter(
            "streamer_sentiment", "Scored events by stream (news, chat), predicted topic "
            "and sentiment: the trends, as rates", ["stream", "topic", "sentiment"],
            registry=r,
        )
        self.backend = Gauge(
            "streamer_scorer_info", "Live scorer (value 1)", ["scorer"], registry=r
        )
        self.model = Gauge(
            "streamer_model_info", "Live model (value 1): its bundle id (content hash), "
            "bundle name and variant", ["bundle_id", "bundle", "variant"], registry=r,
        )
        self.model_swaps = Counter(
            "streamer_model_swaps", "Model upgrades (result: swapped, or failed: the new "
            "bundle did not load and the live model stayed)", ["result"], registry=r,
        )
        self.models_retired_alive = Gauge(
            "streamer_models_retired_alive", "Models switched away from that are still in "
            "memory (a batch still scoring on one); 0 once each is freed", registry=r,
        )
        self.score_in_flight = Gauge(
            "streamer_score_in_flight", "Batches running or queued for a scoring thread",
            registry=r,
        )
        self.batch_size_limit = Gauge(
            "streamer_batch_size_limit", "Adaptive batching: current max events per batch",
            ["topic"], registry=r,
        )
        self.batch_wait_limit = Gauge(
            "streamer_batch_wait_seconds", "Adaptive batching: current max wait for a batch",
            ["topic"], registry=r,
        )
        self.consumer_lag = Gauge(
            "streamer_consumer_lag",
            "Records of an input partition not yet processed by this worker (end offset "
            "as of the last fetch minus the next offset to process), after its last batch",
            ["topic", "partition"], registry=r,
        )
        self.redis_retries = Counter(
            "streamer_redis_retries", "Redis write retries", registry=r
        )
        self.ready = Gauge("streamer_ready", "1 when the worker is ready", registry=r)

    def observe_stage(self, stage: str, seconds: float) -> None:
        """One event's duration of ``stage`` (a LatencyRecorder observer)."""
        child = self._stage_children.get(stage)
        if child is None:
            child = self._stage_children[stage] = self.stage_seconds.labels(stage)
        child.observe(seconds)

    def show_live(self, scorer: str, model: ModelRef,
                  replaced: tuple[str, ModelRef] | None = None) -> None:
        """Name the live scorer and model (value 1); ``replaced``'s series are removed."""
        if replaced is not None:
            old_scorer, old_model = replaced
            if old_scorer != scorer:
                self.backend.remove(old_scorer)
            if old_model != model:
                self.model.remove(old_model.bundle_id, old_model.bundle, old_model.variant)
        self.backend.labels(scorer).set(1)
        self.model.labels(model.bundle_id, model.bundle, model.variant).set(1)
