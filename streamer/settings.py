"""All tunables, typed, in sections; each field reads one ``STREAMER_*`` variable.

A component takes only its section (``settings.redis``, ``settings.alerts``, ...). Each
section reads its own variables, so the names a user sets are those of the flat list in
docs/SETTINGS.md: a section's prefix plus the field's name (``STREAMER_REDIS_KEY_PREFIX``
is ``settings.redis.key_prefix``), or the name a field declares where it predates the
section (``STREAMER_APP_ID`` is ``settings.worker.app_id``). Two names are also read
without the prefix because the tooling around Kafka and Redis commonly sets them:
``KAFKA_BOOTSTRAP`` and ``REDIS_URL``.

``Settings(**values)`` and ``settings.replace(**values)`` take those same flat names
(``redis_key_prefix=...``, lower case, without ``STREAMER_``), so tests and tools can set
any field without knowing its section.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamer.detect.core import DetectorParams, DetectorTunables
from streamer.keys import ALERT_SCOPES, AlertScope

ENV_FILE = ".env"
# Node i (from 0) of a local Kafka cluster listens on STREAMER_KAFKA_PORT + 2i (clients)
# and STREAMER_KAFKA_CONTROLLER_PORT + 2i (quorum); the devstack and the defaults share it.
KAFKA_NODE_PORT_STEP = 2


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


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=ENV_FILE, extra="ignore",
                              populate_by_name=True)


def _var(name: str, *more: str) -> AliasChoices:
    """The variable of a field whose name predates its section: ``STREAMER_<NAME>``."""
    return AliasChoices(*more, f"STREAMER_{name.upper()}")


class _Section(BaseSettings):
    def variables(self) -> Iterator[tuple[str, str, FieldInfo]]:
        """(field, environment variable(s), info) of each field, in order."""
        for name, info in type(self).model_fields.items():
            yield name, " / ".join(_env_names(type(self), name, info)), info


def _env_names(cls: type[BaseSettings], name: str, info: FieldInfo) -> list[str]:
    choices = getattr(info.validation_alias, "choices", None)
    if choices:
        return [str(c) for c in choices]
    return [f"{cls.model_config.get('env_prefix', '')}{name}".upper()]


class KafkaSettings(_Section):
    """Kafka clients: servers, security, producer and consumer timing."""

    model_config = _config("STREAMER_KAFKA_")

    bootstrap: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "STREAMER_KAFKA_BOOTSTRAP"),
        description="Kafka bootstrap servers, host:port[,host:port]. Unset with "
        "STREAMER_KAFKA_BROKERS above 1: every node of the local cluster.",
    )
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol; SASL_SSL: SASL over TLS."
    )
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = Field(
        "SCRAM-SHA-256", description="SASL mechanism (SASL_PLAINTEXT / SASL_SSL)."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (environment only; never logged)."
    )
    sasl_password_file: Path | None = Field(
        None, description="File holding the SASL password (instead of "
        "STREAMER_KAFKA_SASL_PASSWORD)."
    )
    ssl_cafile: Path | None = Field(
        None, description="CA certificate (PEM) that signed the brokers' certificates (SSL / "
        "SASL_SSL); none: the system's trusted CAs.",
    )
    linger_ms: int = Field(
        0, ge=0, le=1000, description="How long the project's producers (streamer produce, "
        "the demo, the benchmark, the alert dispatcher) hold a record to batch it with "
        "others; records sent while a request is in flight batch anyway, so 0 costs little "
        "throughput and saves its full value in latency.",
    )
    request_timeout_s: float = Field(
        40.0, gt=0, le=600, description="How long the project's producers wait for the "
        "broker to take a record into their send queue or to answer a request before they "
        "retry it (aiokafka's request_timeout_ms).",
    )
    session_timeout_s: float = Field(
        30.0, ge=6, le=300, description="Consumer-group session timeout: how long a dead "
        "worker keeps its partitions before the group hands them to the others.",
    )
    heartbeat_interval_s: float = Field(
        3.0, gt=0, description="Consumer heartbeat interval (well below the session timeout).",
    )

    def password(self) -> str | None:
        """The SASL password: sasl_password, else the file's first line."""
        return _secret(self.sasl_password, self.sasl_password_file)


class TopicSettings(_Section):
    """Topic names, and the partitions, replication and retention of the topics the app
    creates (an existing topic is never changed: a difference is logged as a warning)."""

    model_config = _config("STREAMER_TOPIC_")

    news: str = Field("news", description="Input topic for news items.")
    chat: str = Field("chat", description="Input topic for chat messages.")
    scored: str = Field("scored", description="Output topic for scored events.")
    alerts: str = Field("alerts", description="Output topic for alert records.")
    partitions: int = Field(4, ge=1, description="Partitions for topics the app creates.")
    replication_factor: int = Field(
        1, ge=1, le=32, description="Replication factor of the topics the app creates (and "
        "of the worker's internal Faust topics); 3 on a production cluster. It cannot exceed "
        "the number of brokers. Unset: min(3, STREAMER_KAFKA_BROKERS).",
    )
    min_insync_replicas: int | None = Field(
        None, ge=1, le=32, description="min.insync.replicas of the topics the app creates: "
        "how many replicas must have a record before an acks=all write succeeds (2 with a "
        "replication factor of 3); unset: 2 when STREAMER_KAFKA_BROKERS is 3 or more, else "
        "the brokers' default (1).",
    )
    retention_ms: int | None = Field(
        None, ge=-1, description="retention.ms of the topics the app creates; -1: keep "
        "forever; unset: the broker's default (log.retention.hours, 7 days unless changed).",
    )
    dlq_suffix: str = Field(".dlq", validation_alias=_var("dlq_suffix"),
                            description="Dead-letter topic = input topic + this suffix.")

    @property
    def inputs(self) -> tuple[str, str]:
        return (self.news, self.chat)

    def dlq(self, topic: str) -> str:
        return f"{topic}{self.dlq_suffix}"


class RedisSettings(_Section):
    """The Redis client: server, credentials, key prefix, retries."""

    model_config = _config("STREAMER_REDIS_")

    url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "STREAMER_REDIS_URL"),
        description="Redis URL (redis:// or rediss://). Unset with STREAMER_REDIS_CLUSTER="
        "true: the local Redis Cluster's first node (STREAMER_REDIS_CLUSTER_PORT).",
    )
    password: SecretStr | None = Field(
        None, description="Redis password; kept out of the URL so it never reaches logs."
    )
    password_file: Path | None = Field(
        None, description="File holding the Redis password (instead of STREAMER_REDIS_PASSWORD)."
    )
    username: str | None = Field(
        None, description="Redis ACL user (AUTH username password); none: the default user."
    )
    tls_ca_file: Path | None = Field(
        None, description="CA certificate (PEM) that signed the Redis server's certificate, "
        "for rediss:// URLs; none: the system's trusted CAs.",
    )
    key_prefix: str = Field("st", description="Prefix of every Redis key the app writes.",
                                  pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,31}$")
    retry_attempts: int = Field(
        30, ge=1, description="Redis write attempts before the worker stops (no offset commit)."
    )
    retry_backoff_s: float = Field(0.2, gt=0, description="First Redis retry backoff.")
    retry_backoff_max_s: float = Field(5.0, gt=0, description="Max Redis retry backoff.")
    timeout_s: float = Field(5.0, gt=0, description="Redis socket timeout.")
    read_page: int = Field(
        1_000, ge=1, description="Bucket keys per Redis round trip (and SCAN COUNT) when reading "
        "trends; wider spans are read from the keys Redis holds, so a read stays bounded "
        "whatever the event times.",
    )
    cluster: bool = Field(
        False, description="REDIS_URL names one node of a Redis Cluster: use redis-py's cluster "
        "client (it finds the other nodes, follows MOVED and fail-overs). Every script touches "
        "one hash slot (streamer/keys.py); window reads merge the partitions' slots in the client.",
    )
    wait_replicas: int = Field(
        0, ge=0, description="Replicas that must acknowledge a batch's aggregate writes (Redis "
        "WAIT, on the connection and master that took them) before its offsets may be "
        "committed; fewer in STREAMER_REDIS_WAIT_TIMEOUT_MS is a failed write, retried, then "
        "the worker stops uncommitted. 0: no wait. Unset: 1 with STREAMER_REDIS_CLUSTER=true "
        "(set 0 for a cluster without replicas), else 0.",
    )
    wait_timeout_ms: int = Field(
        1_000, ge=1, description="Longest one WAIT for STREAMER_REDIS_WAIT_REPLICAS replicas "
        "blocks before the write counts as not acknowledged (and is retried).",
    )

    def secret(self) -> str | None:
        """The Redis password: password, else the file's first line."""
        return _secret(self.password, self.password_file)


class WorkerSettings(_Section):
    """The worker process: its identity, guarantee, restarts and shutdown."""

    model_config = _config("STREAMER_WORKER_")

    app_id: str = Field("streamer", validation_alias=_var("app_id"),
                        description="Faust app id = Kafka consumer group.")
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        "exactly_once", validation_alias=_var("processing_guarantee"),
        description="Faust processing guarantee for the scored topic.",
    )
    id: str | None = Field(None, description="Worker name in metrics; default host-pid.",
                                  pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
    max_restarts: int = Field(
        5, ge=0, description="Crashes of the worker process that `streamer worker` restarts "
        "it after (within STREAMER_WORKER_RESTART_WINDOW_S); 0: no supervisor, a crash ends it.",
    )
    restart_window_s: float = Field(
        600.0, gt=0, description="Window over which STREAMER_WORKER_MAX_RESTARTS is counted.",
    )
    restart_backoff_s: float = Field(
        2.0, gt=0, description="Wait before the first restart; doubles per restart, max 30 s.",
    )
    shutdown_timeout_s: float = Field(
        20.0, gt=0, description="Longest a worker takes to stop after SIGTERM or SIGINT: a "
        "clean stop (last batch written, offsets committed) normally takes a second or two, "
        "but with Kafka or Redis gone every step waits out its own timeout; past this the "
        "process exits at once (code 1). Nothing is lost: what it did not commit replays.",
        validation_alias=_var("shutdown_timeout_s"),
    )
    latency_push_interval_s: float = Field(
        5.0, gt=0, validation_alias=_var("latency_push_interval_s"),
        description="How often a worker writes its latency histograms to Redis.",
    )
    latency_window_s: int = Field(
        300, ge=1, le=86_400, validation_alias=_var("latency_window_s"),
        description="The recent window of the latency views (`streamer latency`, `summary`, "
        "the dashboard), beside the totals since each worker started: the slices of wall "
        "clock that ended in the last this many seconds.",
    )
    latency_slice_s: int = Field(
        30, ge=1, le=3600, validation_alias=_var("latency_slice_s"),
        description="Width of the slices of wall clock a worker keeps its latency in for "
        "the recent window (a window spans up to one slice more than asked).",
    )
    latency_slice_retention_s: int = Field(
        3600, ge=60, le=86_400, validation_alias=_var("latency_slice_retention_s"),
        description="How long a worker keeps its latency slices in Redis: the longest "
        "recent window a view can show.",
    )
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=_var("log_format"),
        description="Log lines of the worker and the CLI: text, or json (one JSON object a "
        "line on stderr with the keys ts, level, logger, message, and worker where known; "
        "exc_info when a traceback is logged).",
    )
    lag_max_records: int = Field(
        0, ge=0, description="`streamer lag` exits 1 when the group's committed offsets "
        "trail the input partitions' ends by more records than this in all (0: any lag "
        "counts); a health check for the consumer group that works with no worker running.",
    )
    lag_export_interval_s: float = Field(
        15.0, gt=0, le=3600, description="`streamer lag --serve`: how often the exporter "
        "reads the group's committed and end offsets from Kafka.",
    )
    lag_export_port: int = Field(
        6067, ge=1, le=65535, description="`streamer lag --serve`: the port of its "
        "Prometheus /metrics (on 127.0.0.1 unless --host says otherwise).",
    )


class StartupSettings(_Section):
    """How a starting worker waits for Kafka and Redis."""

    model_config = _config("STREAMER_STARTUP_")

    wait_s: float = Field(
        300.0, ge=0, description="How long a starting worker keeps retrying, with backoff, "
        "a Kafka or Redis that does not answer (refused connections, timeouts) before it "
        "exits 1 (its supervisor may start it again). Refused credentials or certificates "
        "are never retried: they exit 78 at once.",
    )
    retry_backoff_s: float = Field(
        1.0, gt=0, description="First wait between start-up retries; doubles up to "
        "STREAMER_STARTUP_RETRY_BACKOFF_MAX_S.",
    )
    retry_backoff_max_s: float = Field(
        15.0, gt=0, description="Longest wait between start-up retries.",
    )


class CommitSettings(_Section):
    """Kafka offset commits (each one ends the partitions' transactions)."""

    model_config = _config("STREAMER_COMMIT_")

    interval_s: float = Field(
        3.0, gt=0, le=30, description="Kafka offset commit interval. Each commit ends the "
        "partitions' transactions, which Kafka aborts after 60 s: keep it well below that. "
        "Batches wait while a commit runs, so a short one shows in the latency tail (3 s "
        "gave a lower p99 than 1 s at low load: docs/BENCHMARKS.md); a long one delays what "
        "read_committed consumers of the scored topic see by up to this much.",
    )
    stall_timeout_s: float = Field(
        300.0, gt=0, description="A partition whose offsets have not been committed for "
        "this long while its stream has events to take is logged as stalled (Faust's "
        "livelock detector, broker_commit_livelock_soft_timeout).",
    )


class HealthSettings(_Section):
    """The worker's readiness probes of Kafka and Redis."""

    model_config = _config("STREAMER_HEALTH_")

    probe_interval_s: float = Field(
        1.0, gt=0, description="How often the worker asks Kafka (cluster metadata) and Redis "
        "(PING) whether they answer; /readyz reports the last answers and never waits.",
    )
    probe_timeout_s: float = Field(
        2.0, gt=0, description="How long one readiness probe of Kafka or Redis may take "
        "before it counts as not answering.",
    )
    stale_s: float = Field(
        5.0, gt=0, description="A dependency counts as up only while its last successful "
        "probe is at most this old: /readyz turns not-ready this long after Kafka or Redis "
        "stop answering, at the latest.",
    )


class WebSettings(_Section):
    """The worker's web server: health, metrics, dashboard."""

    model_config = _config("STREAMER_WEB_")

    host: str = Field("127.0.0.1", description="Worker web server bind address.")
    port: int = Field(6066, description="Worker web server port.")
    token: SecretStr | None = Field(
        None, description="Bearer token for the worker's metrics and data views; required "
        "when STREAMER_WEB_HOST is not a loopback address (/healthz and /readyz stay open).",
    )
    dashboard_rate_window_s: float = Field(
        30.0, gt=0, le=3600, description="The dashboard's throughput and dead-letter rates: "
        "per second over about this many seconds (from the exact counts in Redis).",
    )

    @field_validator("token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, v: object) -> object:
        # An unset variable passed through (compose's ${VAR:-}) must not become the
        # empty string as a valid token.
        return None if isinstance(v, str) and not v.strip() else v

    @property
    def public(self) -> bool:
        """The web server binds beyond this machine (anything but a loopback address)."""
        host = self.host.strip("[]")
        if host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(host).is_loopback
        except ValueError:  # a host name: assume it is reachable from elsewhere
            return True


class BatchSettings(_Section):
    """Micro-batches: fixed limits, or the bounds and target of adaptive batching."""

    model_config = _config("STREAMER_BATCH_")

    mode: Literal["fixed", "adaptive"] = Field(
        "adaptive", description="fixed: batches of up to STREAMER_BATCH_MAX_SIZE events, the first "
        "waiting up to STREAMER_BATCH_MAX_WAIT_S; adaptive: size and wait adapt per batch to meet "
        "STREAMER_LATENCY_TARGET_MS, growing batches when the consumer lag grows "
        "(streamer/batch/adaptive.py). The default: in docs/BENCHMARKS.md's comparison with "
        "fixed settings it has the lowest p99 at low load and a lower p99 than the best "
        "fixed setting at high load.",
    )
    max_size: int = Field(
        64, ge=1, description="Max events per micro-batch (adaptive mode: the upper bound)."
    )
    max_wait_s: float = Field(
        0.05, gt=0, description="Max seconds the first event of a batch waits for more "
        "(adaptive mode: the upper bound); also the longest a batch takes in events that are "
        "already queued.",
    )
    min_size: int = Field(
        1, ge=1, description="Adaptive batching: least batch size limit."
    )
    min_wait_s: float = Field(
        0.0002, gt=0, description="Adaptive batching: least wait for a batch to fill (the "
        "wait shrinks to it while batches do not fill). Events already queued join a batch "
        "whatever the wait (for up to STREAMER_BATCH_MAX_WAIT_S), so a short one costs no "
        "throughput.",
    )
    latency_target_ms: float = Field(
        100.0, gt=0, description="Adaptive batching: p99 end-to-end latency target, Kafka "
        "record timestamp to Redis ack.",
        validation_alias=_var("latency_target_ms"),
    )


class AdaptiveSettings(_Section):
    """How adaptive batching steers (streamer/batch/adaptive.py)."""

    model_config = _config("STREAMER_ADAPTIVE_")

    window: int = Field(
        512, ge=16, description="Adaptive batching: recent events whose latencies give the p99."
    )
    min_samples: int = Field(
        32, ge=1, description="Adaptive batching: latencies needed (after a cut) before the "
        "p99 steers again.",
    )
    headroom: float = Field(
        0.8, gt=0, le=1, description="Adaptive batching: grow only while p99 < this x target."
    )
    decrease: float = Field(
        0.5, gt=0, lt=1, description="Adaptive batching: multiplicative cut of size and wait."
    )
    size_step: int = Field(
        4, ge=1, description="Adaptive batching: additive size increase per batch."
    )
    wait_share: float = Field(
        0.25, gt=0, le=1, description="Adaptive batching: the wait stays below this share of "
        "the target.",
    )
    service_share: float = Field(
        0.5, gt=0, le=1, description="Adaptive batching: a batch grows only while its "
        "predicted service time fits this share of the target.",
    )
    fill_events: int = Field(
        4, ge=0, description="Adaptive batching: when this many events arrive within the "
        "wait cap (STREAMER_ADAPTIVE_WAIT_SHARE of the target), a batch waits for them: fewer, "
        "fuller batches leave the Kafka consumer more of a busy worker's CPU. Slower streams are "
        "never held back. 0 turns it off.",
    )


class InputSettings(_Section):
    """What an input message may hold; tickers and markets."""

    model_config = _config("STREAMER_")

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
    symbols_file: Path | None = Field(
        None, description="CSV 'symbol,name[,alias...]' overriding the built-in symbol list."
    )
    max_tickers_per_event: int = Field(16, ge=1, description="Cap on tickers kept per event.")
    markets_file: Path | None = Field(
        None, description="CSV 'key,match,aliases' replacing the built-in list of indices, "
        "exchanges and markets (streamer/ingest/markets.csv says how it matches)."
    )
    schema_strict: bool = Field(
        False, description="Dead-letter an input message that carries a field its schema "
        "does not know (reason validation_failed). Off: unknown fields are ignored and "
        "counted (streamer_unknown_fields_total), so a producer may add a field before the "
        "workers know it.",
    )


class ScoringSettings(_Section):
    """Which scorer, which bundle, and how inference runs."""

    model_config = _config("STREAMER_")

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
    bundle_build_threads: int = Field(
        2, ge=1, description="torch threads when a worker builds the quick default bundle.",
    )
    model_watch_s: float = Field(
        15.0, ge=0, description="How often a worker asks which bundle should be live (the "
        "promoted one, else the full build once complete, else the quick default); when the "
        "answer is another model, it loads and warms it beside the live one off the event "
        "loop, switches between batches and frees the old one. 0: never (a restart picks it "
        "up). A bundle pinned by STREAMER_BUNDLE_DIR is never switched.",
    )
    labelled_data_dir: Path = Field(
        default_factory=_default_labelled_data,
        description="Labelled 'text,label' CSVs (tfn-sentiment, phrasebank, reuters-topics).",
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
    ort_intra_op_threads: int = Field(
        1, ge=1, description="ONNX Runtime intra-op threads per inference thread; keep "
        "STREAMER_INFER_THREADS * this at about the number of cores.",
    )
    ort_tensorrt: bool = Field(
        True, description="On a GPU, run ONNX variants with ONNX Runtime's TensorRT provider "
        "(FP16, engines cached under the cache dir) when it is installed; else CUDA.",
    )
    score_max_group: int = Field(
        64, ge=1, description="Most rows in one ONNX Runtime call (a length bucket's slice).",
    )
    score_max_tokens: int = Field(
        0, ge=0, description="Batch each ONNX Runtime call by tokens instead of rows: at most "
        "this many padded tokens (rows x padded length) per call, in place of "
        "STREAMER_SCORE_MAX_GROUP's row cap, so short texts share a call in greater numbers "
        "than long ones. For a GPU (e.g. 8192); 0: off (rows). No effect on INT8 variants "
        "scored one text per call (STREAMER_SCORE_INT8_ROWS_ALONE).",
    )
    score_int8_rows_alone: bool = Field(
        True, description="Score each text of a dynamically quantized (INT8) variant in an "
        "ONNX Runtime call of its own. Those variants compute their activation scales per "
        "call, so a text's scores would depend on the texts that share its call, and a "
        "replay after a rebalance could change labels. Alone, a text is never padded either: "
        "on CPU it costs little throughput (docs/BENCHMARKS.md).",
    )
    torch_device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="STREAMER_SCORER=torch: where the model runs; 'auto': CUDA when "
        "torch sees a GPU, else CPU.",
    )
    torch_cuda_graphs: bool = Field(
        True, description="STREAMER_SCORER=torch on CUDA: replay captured CUDA graphs, one per "
        "(batch bucket, length bucket) shape, instead of launching kernels one by one.",
    )
    torch_threads: int = Field(
        1, ge=1, description="STREAMER_SCORER=torch on CPU: torch intra-op threads (process-wide); "
        "like STREAMER_ORT_INTRA_OP_THREADS, leave a core for the Kafka and Redis clients.",
    )
    torch_max_graphs: int = Field(
        64, ge=1, description="STREAMER_SCORER=torch: captured CUDA graphs kept (least recently "
        "used dropped); each holds GPU memory.",
    )


class AggregateSettings(_Section):
    """Event-time trend buckets and de-duplication in Redis."""

    model_config = _config("STREAMER_")

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


class ProduceSettings(_Section):
    """The project's producers of input: retries while the broker stalls."""

    model_config = _config("STREAMER_PRODUCE_")

    deadline_s: float = Field(
        180.0, gt=0, description="How long `streamer replay`, `streamer demo` and the other "
        "producers of input keep retrying, with backoff, while the broker takes or "
        "acknowledges no records (a stalled or restarting broker) before they give up "
        "with an error saying how many messages were sent.",
    )
    retry_backoff_s: float = Field(
        0.5, gt=0, description="First wait before a producer retries a record the broker "
        "did not take; it doubles up to STREAMER_PRODUCE_RETRY_BACKOFF_MAX_S.",
    )
    retry_backoff_max_s: float = Field(
        5.0, gt=0, description="Longest wait between a producer's retries of one record.",
    )


class PathSettings(_Section):
    """Where local data and caches live."""

    model_config = _config("STREAMER_")

    data_dir: Path = Field(default_factory=_default_home, description="Local stack data.")
    cache_dir: Path = Field(default_factory=_default_cache, description="Jars, bundles, pip.")

    @property
    def bundles(self) -> Path:
        return self.cache_dir / "bundles"


class StackSettings(_Section):
    """Tooling only: the local Kafka + Redis, the demo and the benchmark."""

    model_config = _config("STREAMER_")

    kafka_version: str = Field("4.1.1", description="Apache Kafka version fetched by Maven.")
    kafka_heap: str = Field("512m", description="Broker max heap (-Xmx), of each node.")
    kafka_port: int = Field(9092, description="Local broker port (127.0.0.1); node i of a "
                            "cluster (from 0) listens on this + 2i.")
    kafka_controller_port: int = Field(9093, description="Local KRaft controller port; node i "
                                       "of a cluster (from 0) on this + 2i.")
    kafka_brokers: int = Field(
        1, ge=1, le=9, description="Nodes of the local Kafka (`streamer stack up "
        "--kafka-brokers`): 1, or a cluster of combined broker+controller nodes, each a "
        "quorum voter, with replication factor min(3, nodes) and min.insync.replicas one "
        "less as the brokers' defaults.",
    )
    redis_port: int = Field(6379, description="Local redis-server port (127.0.0.1).")
    redis_cluster_port: int = Field(
        7000, ge=1, le=55_530, description="`stack up --redis-cluster`: the first of six "
        "consecutive ports of the local Redis Cluster's nodes (3 masters + 3 replicas, "
        "127.0.0.1); each node's cluster bus listens 10000 above its port.",
    )
    redis_cluster_node_timeout_ms: int = Field(
        5_000, ge=100, description="Local Redis Cluster's cluster-node-timeout: how long a "
        "node may not answer before it counts as failed and a replica takes over its slots.",
    )
    stack_start_timeout_s: float = Field(90.0, gt=0, description="Wait for servers to answer.")
    demo_alert_wait_s: float = Field(
        30.0, ge=0, description="run-demo: how long to wait for the injected spike's alert."
    )
    demo_worker_ready_timeout_s: float = Field(
        180.0, gt=0, description="run-demo: how long to wait for its worker to be ready.",
    )
    demo_warmup_messages: int = Field(
        400, ge=0, description="run-demo: messages from the start of the demo stream sent "
        "at once to warm the worker (its model, batches, connections) before the rest is "
        "measured; their latency is left out of the run's figures (0: no warm-up).",
    )
    demo_rate_share: float = Field(
        0.5, gt=0, le=1, description="run-demo without --rate: offer this share of the rate "
        "the worker sustained in the warm-up, so that the measured run has no backlog.",
    )
    demo_full_build: bool = Field(
        True, description="run-demo: when no complete full bundle exists, start `streamer "
        "models build --profile full --background` (detached, lowest CPU priority, resumable); "
        "workers switch to it once it is complete. Never under CI (CI=true).",
    )
    bench_generator: Literal["auto", "aiokafka"] = Field(
        "auto", description="`streamer bench`'s load generator: auto = librdkafka "
        "(confluent-kafka) when installed and the broker is PLAINTEXT, else aiokafka.",
    )
    bench_peer_site: Path | None = Field(
        None, description="Folder holding Quix Streams and its pinned dependencies apart "
        "from the venv (`pip install --target`, as scripts/setup.sh does for the tests), "
        "put first on the Quix Streams peer's PYTHONPATH; unset: the running venv's "
        "folder + '-peer' (.venv-peer). Its pins would hold pydantic and confluent-kafka "
        "below what users get, so it stays out of the venv.",
    )

    def local_kafka_bootstrap(self) -> str:
        """Every node of the local Kafka (STREAMER_KAFKA_BROKERS of them): its clients'
        bootstrap list, so they reach the cluster while any one node is up."""
        return ",".join(f"127.0.0.1:{self.kafka_port + KAFKA_NODE_PORT_STEP * i}"
                        for i in range(self.kafka_brokers))

    def local_redis_cluster_url(self) -> str:
        """The first node of the local Redis Cluster (the client finds the others)."""
        return f"redis://127.0.0.1:{self.redis_cluster_port}/0"


class AlertSettings(_Section, DetectorTunables):
    """Negative-spike alerts: the detector's tunables (defined with the detector), event
    time, delivery to Kafka and the webhook. Windows and the detector run in event time
    (the Redis buckets), so a replay at any speed yields the same alerts as the live stream."""

    model_config = _config("STREAMER_ALERT_")

    enabled: bool = Field(True, validation_alias=_var("alerts_enabled"),
                          description="Run the negative-spike detector in workers.")
    scopes: tuple[AlertScope, ...] = Field(
        ALERT_SCOPES,
        description="Scopes the detector watches (JSON list, e.g. '[\"ticker\"]'): topic, "
        "ticker, market (indices and exchanges named in the text), stream (every news item "
        "or chat line).",
    )
    allowed_lateness_s: float = Field(
        2.0, ge=0, description="Event-time slack before a bucket is final: watermark = "
        "min over partitions of their newest event time - this.",
    )
    idle_partition_s: float = Field(
        30.0, gt=0, description="A partition with no new event for this long (wall clock) "
        "stops holding the watermark back.",
    )
    evidence_k: int = Field(5, ge=0, le=50, description="Evidence messages per alert.")
    max_buckets_per_call: int = Field(
        60, ge=1, description="Most buckets one detector call evaluates (bounds stream stalls)."
    )
    bootstrap_s: int = Field(
        0, ge=0, description="A detector with no state yet begins at the oldest bucket "
        "Redis holds (the bucket TTL bounds how old), or at most this far before the "
        "watermark; 0: no bound, so a backfill into a fresh worker is judged from its "
        "first story, as it would have been live.",
    )
    tick_s: float = Field(
        1.0, gt=0, description="How often a worker re-checks the watermark without new input."
    )
    resend_interval_s: float = Field(
        2.0, gt=0, description="How often the outbox is scanned for undelivered alerts."
    )
    delivery_lease_s: float = Field(
        10.0, gt=0, description="One worker at a time delivers (in order); its lease lasts this."
    )
    send_timeout_s: float = Field(
        10.0, gt=0, description="Wait this long for Kafka to acknowledge an alert, then retry."
    )
    claim_ttl_s: int = Field(
        7 * 86_400, ge=60, description="How long alert-id claims are remembered in Redis."
    )
    webhook_url: str | None = Field(
        None, description="Optional HTTP(S) URL alerts are POSTed to (JSON)."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for the webhook's X-Streamer-Signature header."
    )
    webhook_timeout_s: float = Field(2.0, gt=0, description="Webhook request timeout.")
    webhook_retries: int = Field(
        3, ge=0, description="Webhook retries after the first attempt (exponential backoff)."
    )
    webhook_backoff_s: float = Field(
        0.5, gt=0, description="First webhook retry backoff; doubles per retry."
    )
    webhook_max_pending: int = Field(
        1_000, ge=1, description="Webhook deliveries queued at most; beyond, counted failed."
    )

    def detector(self, bucket_s: int) -> DetectorParams:
        """The detector's parameters: these tunables and the buckets' width."""
        return DetectorParams(bucket_s=bucket_s, **{
            name: getattr(self, name) for name in DetectorTunables.model_fields})


SECTIONS: dict[str, type[_Section]] = {
    "kafka": KafkaSettings, "topics": TopicSettings, "redis": RedisSettings,
    "worker": WorkerSettings, "startup": StartupSettings, "commit": CommitSettings,
    "health": HealthSettings, "web": WebSettings, "batching": BatchSettings,
    "adaptive": AdaptiveSettings, "input": InputSettings, "scoring": ScoringSettings,
    "aggregate": AggregateSettings, "alerts": AlertSettings, "produce": ProduceSettings,
    "paths": PathSettings, "stack": StackSettings,
}


def _flat_key(name: str) -> str:
    """``STREAMER_REDIS_KEY_PREFIX`` or ``redis_key_prefix`` -> ``redis_key_prefix``."""
    return name.lower().removeprefix("streamer_")


def _flat_names() -> dict[str, tuple[str, str]]:
    """Flat name (an environment variable, lower case, without ``STREAMER_``) -> (section,
    field); the unprefixed ``kafka_bootstrap``-style aliases too."""
    out: dict[str, tuple[str, str]] = {}
    for section, cls in SECTIONS.items():
        for name, info in cls.model_fields.items():
            for env in _env_names(cls, name, info):
                flat = _flat_key(env)
                if flat in out and out[flat] != (section, name):
                    raise RuntimeError(f"two settings read {env}")
                out[flat] = (section, name)
    return out


def _with_default(section: _Section, **values: Any) -> _Section:
    """``section`` with ``values`` as if they were the fields' own defaults: they stay
    out of ``model_fields_set``, so a later ``replace`` derives them again."""
    if all(getattr(section, k) == v for k, v in values.items()):
        return section
    copy = section.model_copy(update=values)
    copy.__pydantic_fields_set__ = set(section.model_fields_set)
    return copy


def _default(cls: type[_Section], name: str) -> Any:
    return cls.model_fields[name].get_default(call_default_factory=True)


def derived_defaults(sections: dict[str, Any]) -> dict[str, Any]:
    """The defaults that follow from other settings (``Settings`` applies them; a field
    set in the environment, ``.env`` or by name is never changed):

    - STREAMER_KAFKA_BROKERS > 1 (the local Kafka cluster): KAFKA_BOOTSTRAP lists every
      local node; STREAMER_TOPIC_REPLICATION_FACTOR is min(3, brokers) and
      STREAMER_TOPIC_MIN_INSYNC_REPLICAS 2 from 3 brokers on, as the local brokers'
      own defaults (an acks=all record is on two replicas before it is acknowledged);
    - STREAMER_REDIS_CLUSTER=true: REDIS_URL is the local Redis Cluster's first node
      (STREAMER_REDIS_CLUSTER_PORT), and STREAMER_REDIS_WAIT_REPLICAS 1, so a batch's
      aggregates are on a replica before its offsets are committed.

    So ``streamer stack up --kafka-brokers 3 --redis-cluster`` and every command after it
    need only those two variables (``run-demo`` takes the same two flags)."""
    stack, kafka, topics, redis = (sections.get(n) for n in ("stack", "kafka", "topics", "redis"))
    if not (isinstance(stack, StackSettings) and isinstance(kafka, KafkaSettings)
            and isinstance(topics, TopicSettings) and isinstance(redis, RedisSettings)):
        return sections  # a partial or raw input: the fields' validation says what is wrong
    brokers = stack.kafka_brokers

    def unset(section: _Section, **values: Any) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k not in section.model_fields_set}

    return {**sections,
            "kafka": _with_default(kafka, **unset(
                kafka, bootstrap=stack.local_kafka_bootstrap() if brokers > 1
                else _default(KafkaSettings, "bootstrap"))),
            "topics": _with_default(topics, **unset(
                topics, replication_factor=min(3, brokers),
                min_insync_replicas=2 if brokers >= 3 else None)),
            "redis": _with_default(redis, **unset(
                redis, url=stack.local_redis_cluster_url() if redis.cluster
                else _default(RedisSettings, "url"),
                wait_replicas=1 if redis.cluster else 0))}


class Settings(BaseModel):
    """Every section; ``Settings()`` reads the environment (and ``.env``) once."""

    model_config = ConfigDict(frozen=True)
    FLAT: ClassVar[dict[str, tuple[str, str]]]

    kafka: KafkaSettings
    topics: TopicSettings
    redis: RedisSettings
    worker: WorkerSettings
    startup: StartupSettings
    commit: CommitSettings
    health: HealthSettings
    web: WebSettings
    batching: BatchSettings
    adaptive: AdaptiveSettings
    input: InputSettings
    scoring: ScoringSettings
    aggregate: AggregateSettings
    alerts: AlertSettings
    produce: ProduceSettings
    paths: PathSettings
    stack: StackSettings

    def __init__(self, _env_file: str | Path | None = ENV_FILE, **values: Any) -> None:
        routed = _route(values)
        super().__init__(**{
            name: values[name] if isinstance(values.get(name), cls)
            else cls(_env_file=_env_file, **routed.get(name, {}))
            for name, cls in SECTIONS.items()})

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        return derived_defaults(data) if isinstance(data, dict) else data

    def replace(self, **values: Any) -> Settings:
        """A copy with fields changed by flat name, validated (strings from an
        environment are parsed as the worker would parse them); the defaults that
        follow from other settings (``derived_defaults``) follow the new values."""
        sections: dict[str, Any] = {name: getattr(self, name) for name in SECTIONS}
        for section, fields in _route(values).items():
            old = sections[section]
            new = type(old).model_validate({**dict(old), **fields})
            # Set means set before or now, so a derived default is derived again.
            new.__pydantic_fields_set__ = old.model_fields_set | fields.keys()
            sections[section] = new
        return Settings(_env_file=None, **sections)

    def with_env(self, env: Mapping[str, str]) -> Settings:
        """A copy with the settings variables of ``env`` applied, parsed as the worker
        parses its environment; other variables are ignored."""
        known = {k: _env_value(v) for k, v in env.items() if _flat_key(k) in Settings.FLAT}
        return self.replace(**known)

    def variables(self) -> Iterator[tuple[str, str, FieldInfo, Any]]:
        """(section.field, environment variable(s), info, current value) of every field."""
        for section in SECTIONS:
            part = getattr(self, section)
            for name, env, info in part.variables():
                yield f"{section}.{name}", env, info, getattr(part, name)


def _env_value(raw: str) -> Any:
    # Like pydantic-settings: a list or mapping arrives in the environment as JSON.
    if raw.lstrip().startswith(("[", "{")):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw


def _route(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    routed: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in SECTIONS:
            continue  # a whole section, taken as it is
        where = Settings.FLAT.get(_flat_key(key))
        if where is None:
            raise TypeError(f"unknown setting {key!r} (docs/SETTINGS.md lists them)")
        routed.setdefault(where[0], {})[where[1]] = value
    return routed


Settings.FLAT = _flat_names()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
