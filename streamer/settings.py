"""All tunables in one typed place; each field reads ``STREAMER_<NAME>`` from the environment.

Two names are also read without the prefix because the tooling around Kafka and
Redis commonly sets them: ``KAFKA_BOOTSTRAP`` and ``REDIS_URL``.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.cwd() / ".data"


def _default_cache() -> Path:
    return Path.home() / ".cache" / "streamer"


def _default_labelled_data() -> Path:
    # The shared data sits beside the repository: <repo>/../shared/data.
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def _secret(value: SecretStr | None, path: Path | None) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read the secret file {path}: {exc.strerror}") from exc
    return lines[0] if lines else ""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STREAMER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # --- servers -----------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "STREAMER_KAFKA_BOOTSTRAP"),
        description="Kafka bootstrap servers, host:port[,host:port].",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "STREAMER_REDIS_URL"),
        description="Redis URL (redis:// or rediss://).",
    )
    redis_password: SecretStr | None = Field(
        None, description="Redis password; kept out of the URL so it never reaches logs."
    )
    redis_password_file: Path | None = Field(
        None, description="File holding the Redis password (instead of redis_password)."
    )
    redis_username: str | None = Field(
        None, description="Redis ACL user (AUTH username password); none: the default user."
    )
    redis_tls_ca_file: Path | None = Field(
        None, description="CA certificate (PEM) that signed the Redis server's certificate, "
        "for rediss:// URLs; none: the system's trusted CAs.",
    )

    # --- Kafka security --------------------------------------------------------------------
    # Every Kafka client (worker, producers, CLI, admin) takes these through
    # streamer.kafka.security; secrets come from the environment or a file, never a flag.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol; SASL_SSL: SASL over TLS."
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = Field(
        "SCRAM-SHA-256", description="SASL mechanism (SASL_PLAINTEXT / SASL_SSL)."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(
        None, description="SASL password (environment only; never logged)."
    )
    kafka_sasl_password_file: Path | None = Field(
        None, description="File holding the SASL password (instead of kafka_sasl_password)."
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA certificate (PEM) that signed the brokers' certificates (SSL / "
        "SASL_SSL); none: the system's trusted CAs.",
    )

    # --- topics ------------------------------------------------------------------------
    topic_news: str = Field("news", description="Input topic for news items.")
    topic_chat: str = Field("chat", description="Input topic for chat messages.")
    topic_scored: str = Field("scored", description="Output topic for scored events.")
    topic_alerts: str = Field("alerts", description="Output topic for alert records.")
    dlq_suffix: str = Field(".dlq", description="Dead-letter topic = input topic + this suffix.")
    topic_partitions: int = Field(4, ge=1, description="Partitions for topics the app creates.")

    # --- worker ------------------------------------------------------------------------
    app_id: str = Field("streamer", description="Faust app id = Kafka consumer group.")
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        "exactly_once", description="Faust processing guarantee for the scored topic."
    )
    worker_max_restarts: int = Field(
        5, ge=0, description="Crashes of the worker process that `streamer worker` restarts "
        "it after (within worker_restart_window_s); 0: no supervisor, a crash ends it.",
    )
    worker_restart_window_s: float = Field(
        600.0, gt=0, description="Window over which worker_max_restarts is counted.",
    )
    worker_restart_backoff_s: float = Field(
        2.0, gt=0, description="Wait before the first restart; doubles per restart, max 30 s.",
    )
    shutdown_timeout_s: float = Field(
        20.0, gt=0, description="Longest a worker takes to stop after SIGTERM or SIGINT: a "
        "clean stop (last batch written, offsets committed) normally takes a second or two, "
        "but with Kafka or Redis gone every step waits out its own timeout; past this the "
        "process exits at once (code 1). Nothing is lost: what it did not commit replays.",
    )
    startup_wait_s: float = Field(
        300.0, ge=0, description="How long a starting worker keeps retrying, with backoff, "
        "a Kafka or Redis that does not answer (refused connections, timeouts) before it "
        "exits 1 (its supervisor may start it again). Refused credentials or certificates "
        "are never retried: they exit 78 at once.",
    )
    startup_retry_backoff_s: float = Field(
        1.0, gt=0, description="First wait between start-up retries; doubles up to "
        "startup_retry_backoff_max_s.",
    )
    startup_retry_backoff_max_s: float = Field(
        15.0, gt=0, description="Longest wait between start-up retries.",
    )
    health_probe_interval_s: float = Field(
        1.0, gt=0, description="How often the worker asks Kafka (cluster metadata) and Redis "
        "(PING) whether they answer; /readyz reports the last answers and never waits.",
    )
    health_probe_timeout_s: float = Field(
        2.0, gt=0, description="How long one readiness probe of Kafka or Redis may take "
        "before it counts as not answering.",
    )
    health_stale_s: float = Field(
        5.0, gt=0, description="A dependency counts as up only while its last successful "
        "probe is at most this old: /readyz turns not-ready this long after Kafka or Redis "
        "stop answering, at the latest.",
    )
    web_host: str = Field("127.0.0.1", description="Worker web server bind address.")
    web_port: int = Field(6066, description="Worker web server port.")
    web_token: SecretStr | None = Field(
        None, description="Bearer token for the worker's metrics and data views; required "
        "when web_host is not a loopback address (/healthz and /readyz stay open).",
    )
    batch_max_size: int = Field(
        64, ge=1, description="Max events per micro-batch (adaptive mode: the upper bound)."
    )
    batch_max_wait_s: float = Field(
        0.05, gt=0, description="Max seconds the first event of a batch waits for more "
        "(adaptive mode: the upper bound); also the longest a batch takes in events that are "
        "already queued.",
    )
    batch_mode: Literal["fixed", "adaptive"] = Field(
        "adaptive", description="fixed: batches of up to batch_max_size events, the first "
        "waiting up to batch_max_wait_s; adaptive: size and wait adapt per batch to meet "
        "latency_target_ms, growing batches when the consumer lag grows "
        "(streamer/batch/adaptive.py). The default: in docs/BENCHMARKS.md's comparison with "
        "fixed settings it has the lowest p99 at low load and a lower p99 than the best "
        "fixed setting at high load.",
    )
    latency_target_ms: float = Field(
        100.0, gt=0, description="Adaptive batching: p99 end-to-end latency target, Kafka "
        "record timestamp to Redis ack.",
    )
    batch_min_size: int = Field(
        1, ge=1, description="Adaptive batching: least batch size limit."
    )
    batch_min_wait_s: float = Field(
        0.0002, gt=0, description="Adaptive batching: least wait for a batch to fill (the "
        "wait shrinks to it while batches do not fill). Events already queued join a batch "
        "whatever the wait (for up to batch_max_wait_s), so a short one costs no throughput.",
    )
    adaptive_window: int = Field(
        512, ge=16, description="Adaptive batching: recent events whose latencies give the p99."
    )
    adaptive_min_samples: int = Field(
        32, ge=1, description="Adaptive batching: latencies needed (after a cut) before the "
        "p99 steers again.",
    )
    adaptive_headroom: float = Field(
        0.8, gt=0, le=1, description="Adaptive batching: grow only while p99 < this x target."
    )
    adaptive_decrease: float = Field(
        0.5, gt=0, lt=1, description="Adaptive batching: multiplicative cut of size and wait."
    )
    adaptive_size_step: int = Field(
        4, ge=1, description="Adaptive batching: additive size increase per batch."
    )
    adaptive_wait_share: float = Field(
        0.25, gt=0, le=1, description="Adaptive batching: the wait stays below this share of "
        "the target.",
    )
    adaptive_service_share: float = Field(
        0.5, gt=0, le=1, description="Adaptive batching: a batch grows only while its "
        "predicted service time fits this share of the target.",
    )
    adaptive_fill_events: int = Field(
        4, ge=0, description="Adaptive batching: when this many events arrive within the "
        "wait cap (adaptive_wait_share of the target), a batch waits for them: fewer, fuller "
        "batches leave the Kafka consumer more of a busy worker's CPU. Slower streams are "
        "never held back. 0 turns it off.",
    )
    infer_threads: int = Field(
        2, ge=1, description="Worker threads for tokenization+inference (off the event "
        "loop). Two let the news and the chat agent score at once: on 2 cores, more "
        "saturated throughput than one (docs/BENCHMARKS.md).",
    )
    score_queue_depth: int = Field(
        2, ge=0, description="Batches that may wait for a scoring thread; beyond that the "
        "agents wait (backpressure) instead of queueing without bound.",
    )
    commit_interval_s: float = Field(
        3.0, gt=0, le=30, description="Kafka offset commit interval. Each commit ends the "
        "partitions' transactions, which Kafka aborts after 60 s: keep it well below that. "
        "Batches wait while a commit runs, so a short one shows in the latency tail (3 s "
        "gave a lower p99 than 1 s at low load: docs/BENCHMARKS.md); a long one delays what "
        "read_committed consumers of the scored topic see by up to this much.",
    )
    commit_stall_timeout_s: float = Field(
        300.0, gt=0, description="A partition whose offsets have not been committed for "
        "this long while its stream has events to take is logged as stalled (Faust's "
        "livelock detector, broker_commit_livelock_soft_timeout).",
    )
    kafka_linger_ms: int = Field(
        0, ge=0, le=1000, description="How long the project's producers (streamer produce, "
        "the demo, the benchmark, the alert dispatcher) hold a record to batch it with "
        "others; records sent while a request is in flight batch anyway, so 0 costs little "
        "throughput and saves its full value in latency.",
    )
    kafka_request_timeout_s: float = Field(
        40.0, gt=0, le=600, description="How long the project's producers wait for the "
        "broker to take a record into their send queue or to answer a request before they "
        "retry it (aiokafka's request_timeout_ms).",
    )
    produce_deadline_s: float = Field(
        180.0, gt=0, description="How long `streamer replay`, `streamer demo` and the other "
        "producers of input keep retrying, with backoff, while the broker takes or "
        "acknowledges no records (a stalled or restarting broker) before they give up "
        "with an error saying how many messages were sent.",
    )
    produce_retry_backoff_s: float = Field(
        0.5, gt=0, description="First wait before a producer retries a record the broker "
        "did not take; it doubles up to produce_retry_backoff_max_s.",
    )
    produce_retry_backoff_max_s: float = Field(
        5.0, gt=0, description="Longest wait between a producer's retries of one record.",
    )
    bench_generator: Literal["auto", "aiokafka"] = Field(
        "auto", description="`streamer bench`'s load generator: auto = librdkafka "
        "(confluent-kafka) when installed and the broker is PLAINTEXT, else aiokafka.",
    )
    kafka_session_timeout_s: float = Field(
        30.0, ge=6, le=300, description="Consumer-group session timeout: how long a dead "
        "worker keeps its partitions before the group hands them to the others.",
    )
    kafka_heartbeat_interval_s: float = Field(
        3.0, gt=0, description="Consumer heartbeat interval (well below the session timeout).",
    )
    worker_id: str | None = Field(None, description="Worker name in metrics; default host-pid.",
                                  pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
    latency_push_interval_s: float = Field(
        5.0, gt=0, description="How often a worker writes its latency histograms to Redis."
    )

    # --- input validation ----------------------------------------------------------------
    max_text_chars: int = Field(
        20_000, ge=1, description="Longest accepted text (headline+body or chat text)."
    )
    max_message_bytes: int = Field(
        262_144, ge=1, description="Largest accepted raw message; bigger ones are dead-lettered."
    )
    max_id_chars: int = Field(128, ge=1, description="Longest accepted id/source/channel field.")
    max_future_skew_s: float = Field(
        300.0, gt=0, description="An event dated more than this after the worker's wall clock "
        "is dead-lettered (reason event_time_future): it would move the event-time watermark "
        "past every real event. Old event times are kept (backfills).",
    )

    # --- tickers ----------------------------------------------------------------------------
    symbols_file: Path | None = Field(
        None, description="CSV 'symbol,name[,alias...]' overriding the built-in symbol list."
    )
    max_tickers_per_event: int = Field(16, ge=1, description="Cap on tickers kept per event.")

    @field_validator("web_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, v: object) -> object:
        # An unset variable passed through (compose's ${VAR:-}) must not become the
        # empty string as a valid token.
        return None if isinstance(v, str) and not v.strip() else v

    @property
    def web_public(self) -> bool:
        """The web server binds beyond this machine (anything but a loopback address)."""
        host = self.web_host.strip("[]")
        if host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:  # a host name: assume it is reachable from elsewhere
            return True

    # --- scoring --------------------------------------------------------------------------
    scorer: Literal["auto", "baseline", "onnx", "torch"] = Field(
        "auto",
        description="'auto': the model bundle (built on first run when missing); "
        "'baseline': the Naive Bayes baseline; 'onnx': the bundle, or fail; 'torch': the "
        "bundle's PyTorch teacher checkpoint (a full build's _work/models/teacher), or fail.",
    )
    bundle_dir: Path | None = Field(None, description="Model bundle directory to load.")
    bundle_variant: str = Field(
        "auto", description="Bundle variant to serve, e.g. 'student3-int8'; 'auto': the "
        "manifest's CUDA default (FP16) with onnxruntime-gpu and a GPU, else its CPU default.",
    )
    ort_intra_op_threads: int = Field(
        1, ge=1, description="ONNX Runtime intra-op threads per inference thread; keep "
        "infer_threads * this at about the number of cores.",
    )
    ort_tensorrt: bool = Field(
        True, description="On a GPU, run ONNX variants with ONNX Runtime's TensorRT provider "
        "(FP16, engines cached under the cache dir) when it is installed; else CUDA.",
    )
    score_max_group: int = Field(
        64, ge=1, description="Most rows in one ONNX Runtime call (a length bucket's slice).",
    )
    score_int8_rows_alone: bool = Field(
        True, description="Score each text of a dynamically quantized (INT8) variant in an "
        "ONNX Runtime call of its own. Those variants compute their activation scales per "
        "call, so a text's scores would depend on the texts that share its call, and a "
        "replay after a rebalance could change labels. Alone, a text is never padded either: "
        "on CPU it costs little throughput (docs/BENCHMARKS.md).",
    )
    torch_device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="scorer=torch: where the model runs; 'auto': CUDA when torch sees "
        "a GPU, else CPU.",
    )
    torch_cuda_graphs: bool = Field(
        True, description="scorer=torch on CUDA: replay captured CUDA graphs, one per "
        "(batch bucket, length bucket) shape, instead of launching kernels one by one.",
    )
    torch_threads: int = Field(
        1, ge=1, description="scorer=torch on CPU: torch intra-op threads (process-wide); "
        "like ort_intra_op_threads, leave a core for the Kafka and Redis clients.",
    )
    torch_max_graphs: int = Field(
        64, ge=1, description="scorer=torch: captured CUDA graphs kept (least recently used "
        "dropped); each holds GPU memory.",
    )
    bundle_build_threads: int = Field(
        2, ge=1, description="torch threads when a worker builds the quick default bundle.",
    )
    labelled_data_dir: Path = Field(
        default_factory=_default_labelled_data,
        description="Labelled 'text,label' CSVs (tfn-sentiment, phrasebank, reuters-topics).",
    )

    # --- aggregates -----------------------------------------------------------------------
    bucket_seconds: int = Field(10, ge=1, description="Width of a Redis trend bucket (event time).")
    bucket_ttl_s: int = Field(
        7_200, ge=60, description="Trend bucket expiry; bounds Redis memory."
    )
    dedup_window_messages: int = Field(
        50_000, ge=0, description="De-duplication of upstream repeats: a message whose event "
        "id the same input partition carried within its last this-many messages is "
        "dead-lettered as duplicate_id (naming the first offset) instead of being scored "
        "and counted again. 0 turns it off. Redis keeps one entry per id per partition "
        "(about 100 bytes). Producers should key messages by id, so repeats share a partition.",
    )
    dedup_ttl_s: int = Field(
        86_400, ge=60, description="A partition's remembered event ids expire after this long "
        "with no new message on it.",
    )
    redis_read_page: int = Field(
        1_000, ge=1, description="Bucket keys per Redis round trip (and SCAN COUNT) when reading "
        "trends; wider spans are read from the keys Redis holds, so a read stays bounded "
        "whatever the event times.",
    )
    redis_key_prefix: str = Field("st", description="Prefix of every Redis key the app writes.",
                                  pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,31}$")
    redis_retry_attempts: int = Field(
        30, ge=1, description="Redis write attempts before the worker stops (no offset commit)."
    )
    redis_retry_backoff_s: float = Field(0.2, gt=0, description="First Redis retry backoff.")
    redis_retry_backoff_max_s: float = Field(5.0, gt=0, description="Max Redis retry backoff.")
    redis_timeout_s: float = Field(5.0, gt=0, description="Redis socket timeout.")

    # --- local stack ----------------------------------------------------------------------
    data_dir: Path = Field(default_factory=_default_home, description="Local stack data.")
    cache_dir: Path = Field(default_factory=_default_cache, description="Jars, bundles, pip.")
    kafka_version: str = Field("4.1.1", description="Apache Kafka version fetched by Maven.")
    kafka_heap: str = Field("512m", description="Broker max heap (-Xmx).")
    kafka_port: int = Field(9092, description="Local broker port (127.0.0.1).")
    kafka_controller_port: int = Field(9093, description="Local KRaft controller port.")
    redis_port: int = Field(6379, description="Local redis-server port (127.0.0.1).")
    stack_start_timeout_s: float = Field(90.0, gt=0, description="Wait for servers to answer.")

    def kafka_password(self) -> str | None:
        """The SASL password: kafka_sasl_password, else the file's first line."""
        return _secret(self.kafka_sasl_password, self.kafka_sasl_password_file)

    def redis_secret(self) -> str | None:
        """The Redis password: redis_password, else the file's first line."""
        return _secret(self.redis_password, self.redis_password_file)

    @property
    def input_topics(self) -> tuple[str, str]:
        return (self.topic_news, self.topic_chat)

    def dlq_topic(self, topic: str) -> str:
        return f"{topic}{self.dlq_suffix}"

    @property
    def bundles_dir(self) -> Path:
        return self.cache_dir / "bundles"

    # --- alerts -------------------------------------------------------------------------
    # Windows and the detector run in event time (the Redis buckets), so a replay at any
    # speed yields the same alerts as the live stream.
    alerts_enabled: bool = Field(True, description="Run the negative-spike detector in workers.")
    alert_scopes: tuple[Literal["topic", "ticker"], ...] = Field(
        ("topic", "ticker"),
        description="Scopes the detector watches (JSON list, e.g. '[\"ticker\"]').",
    )
    alert_short_window_s: int = Field(
        60, ge=1, description="Short window compared with the baseline (event-time seconds)."
    )
    alert_baseline_s: float = Field(
        1_800.0, gt=0, description="Time constant of the exponentially weighted baseline (s)."
    )
    alert_allowed_lateness_s: float = Field(
        2.0, ge=0, description="Event-time slack before a bucket is final: watermark = "
        "min over partitions of their newest event time - this.",
    )
    alert_idle_partition_s: float = Field(
        30.0, gt=0, description="A partition with no new event for this long (wall clock) "
        "stops holding the watermark back.",
    )
    alert_warmup_s: int = Field(
        240, ge=0, description="Event-time history a scope needs before it may fire."
    )
    alert_z_threshold: float = Field(
        4.0, gt=0, description="Fire: z of the window's negative share against the baseline "
        "(exact binomial tail, widened for the baseline's own uncertainty).",
    )
    alert_min_volume: int = Field(
        8, ge=1, description="Fire: least messages in the (sub-)window tested."
    )
    alert_min_negatives: int = Field(
        5, ge=1, description="Fire: least negative messages in the short window."
    )
    alert_min_lift: float = Field(
        0.10, ge=0, le=1, description="Fire: least absolute rise of the negative share."
    )
    alert_min_baseline_share: float = Field(
        0.02, gt=0, lt=1, description="Floor of the baseline share in the z-score."
    )
    alert_burst_min_negatives: int = Field(
        6, ge=1, description="Quiet-scope burst: least negative messages in the window."
    )
    alert_burst_p_value: float = Field(
        1e-6, gt=0, lt=1, description="Quiet-scope burst: Poisson tail probability to fire."
    )
    alert_burst_min_rate: float = Field(
        0.5, gt=0, description="Quiet-scope burst: floor of expected negatives per window."
    )
    alert_z_major: float = Field(7.0, gt=0, description="z at which severity becomes 'major'.")
    alert_z_critical: float = Field(
        11.0, gt=0, description="z at which severity becomes 'critical'."
    )
    alert_resolve_z: float = Field(
        2.0, ge=0, description="Resolve: z below this (or lift below alert_resolve_lift)..."
    )
    alert_resolve_lift: float = Field(
        0.05, ge=0, le=1, description="Resolve: ...or absolute lift below this..."
    )
    alert_resolve_s: int = Field(
        120, ge=0, description="...for this long (event-time seconds) without interruption."
    )
    alert_cooldown_s: int = Field(
        600, ge=0, description="After a resolve, the same scope key cannot fire for this long."
    )
    alert_baseline_freeze_s: int = Field(
        900, ge=0, description="An open episode's buckets stay out of the baseline this long "
        "at most (then a lasting shift is learned).",
    )
    alert_scan_subwindows: bool = Field(
        True, description="Also test the trailing sub-windows (10 s, 20 s, ...): faster onsets."
    )
    alert_evidence_k: int = Field(5, ge=0, le=50, description="Evidence messages per alert.")
    alert_max_buckets_per_call: int = Field(
        60, ge=1, description="Most buckets one detector call evaluates (bounds stream stalls)."
    )
    alert_bootstrap_s: int = Field(
        1_800, ge=0, description="A detector starting on existing data begins this far "
        "before the watermark, to learn baselines.",
    )
    alert_tick_s: float = Field(
        1.0, gt=0, description="How often a worker re-checks the watermark without new input."
    )
    alert_resend_interval_s: float = Field(
        2.0, gt=0, description="How often the outbox is scanned for undelivered alerts."
    )
    alert_delivery_lease_s: float = Field(
        10.0, gt=0, description="One worker at a time delivers (in order); its lease lasts this."
    )
    alert_send_timeout_s: float = Field(
        10.0, gt=0, description="Wait this long for Kafka to acknowledge an alert, then retry."
    )
    alert_claim_ttl_s: int = Field(
        7 * 86_400, ge=60, description="How long alert-id claims are remembered in Redis."
    )
    alert_webhook_url: str | None = Field(
        None, description="Optional HTTP(S) URL alerts are POSTed to (JSON)."
    )
    alert_webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for the webhook's X-Streamer-Signature header."
    )
    alert_webhook_timeout_s: float = Field(2.0, gt=0, description="Webhook request timeout.")
    alert_webhook_retries: int = Field(
        3, ge=0, description="Webhook retries after the first attempt (exponential backoff)."
    )
    alert_webhook_backoff_s: float = Field(
        0.5, gt=0, description="First webhook retry backoff; doubles per retry."
    )
    demo_alert_wait_s: float = Field(
        30.0, ge=0, description="run-demo: how long to wait for the injected spike's alert."
    )
    alert_webhook_max_pending: int = Field(
        1_000, ge=1, description="Webhook deliveries queued at most; beyond, counted failed."
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
