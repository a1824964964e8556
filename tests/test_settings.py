"""Settings in sections: the environment variables a user sets are the ones they always
were, each reaches its section, and flat names still address any field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streamer.settings import Settings

# Every variable as it was named before the settings had sections (docs/SETTINGS.md).
VARIABLES = {
    "KAFKA_BOOTSTRAP", "REDIS_URL", "STREAMER_ADAPTIVE_DECREASE",
    "STREAMER_ADAPTIVE_FILL_EVENTS", "STREAMER_ADAPTIVE_HEADROOM",
    "STREAMER_ADAPTIVE_MIN_SAMPLES", "STREAMER_ADAPTIVE_SERVICE_SHARE",
    "STREAMER_ADAPTIVE_SIZE_STEP", "STREAMER_ADAPTIVE_WAIT_SHARE", "STREAMER_ADAPTIVE_WINDOW",
    "STREAMER_ALERTS_ENABLED", "STREAMER_ALERT_ALLOWED_LATENESS_S",
    "STREAMER_ALERT_BASELINE_FREEZE_S", "STREAMER_ALERT_BASELINE_S",
    "STREAMER_ALERT_BOOTSTRAP_S", "STREAMER_ALERT_BURST_MIN_NEGATIVES",
    "STREAMER_ALERT_BURST_MIN_RATE", "STREAMER_ALERT_BURST_P_VALUE",
    "STREAMER_ALERT_CLAIM_TTL_S", "STREAMER_ALERT_CONFIRM_LIFT", "STREAMER_ALERT_COOLDOWN_S",
    "STREAMER_ALERT_DELIVERY_LEASE_S", "STREAMER_ALERT_EVIDENCE_K",
    "STREAMER_ALERT_IDLE_PARTITION_S", "STREAMER_ALERT_LONG_BASELINE_S",
    "STREAMER_ALERT_LONG_FALSE_ALARMS_PER_WEEK",
    "STREAMER_ALERT_LONG_MAJOR_NEGATIVES", "STREAMER_ALERT_LONG_MAJOR_SHARE",
    "STREAMER_ALERT_LONG_MIN_LIFT", "STREAMER_ALERT_LONG_MIN_NEGATIVES",
    "STREAMER_ALERT_LONG_PRIOR_MESSAGES", "STREAMER_ALERT_LONG_SLOTS",
    "STREAMER_ALERT_LONG_WINDOWS_S", "STREAMER_ALERT_LONG_Z_BY_SCOPE",
    "STREAMER_ALERT_LONG_Z_THRESHOLD",
    "STREAMER_ALERT_MAX_BUCKETS_PER_CALL",
    "STREAMER_ALERT_MIN_BASELINE_SHARE", "STREAMER_ALERT_MIN_LIFT",
    "STREAMER_ALERT_MIN_NEGATIVES", "STREAMER_ALERT_MIN_VOLUME",
    "STREAMER_ALERT_RESEND_INTERVAL_S", "STREAMER_ALERT_RESOLVE_LIFT",
    "STREAMER_ALERT_RESOLVE_S", "STREAMER_ALERT_RESOLVE_Z", "STREAMER_ALERT_SCAN_SUBWINDOWS",
    "STREAMER_ALERT_SCOPES", "STREAMER_ALERT_SEND_TIMEOUT_S", "STREAMER_ALERT_SHORT_WINDOW_S",
    "STREAMER_ALERT_TICK_S", "STREAMER_ALERT_WARMUP_S", "STREAMER_ALERT_WEBHOOK_BACKOFF_S",
    "STREAMER_ALERT_WEBHOOK_MAX_PENDING", "STREAMER_ALERT_WEBHOOK_RETRIES",
    "STREAMER_ALERT_WEBHOOK_SECRET", "STREAMER_ALERT_WEBHOOK_TIMEOUT_S",
    "STREAMER_ALERT_WEBHOOK_URL", "STREAMER_ALERT_Z_CRITICAL", "STREAMER_ALERT_Z_MAJOR",
    "STREAMER_ALERT_Z_THRESHOLD", "STREAMER_APP_ID", "STREAMER_BATCH_MAX_SIZE",
    "STREAMER_BATCH_MAX_WAIT_S", "STREAMER_BATCH_MIN_SIZE", "STREAMER_BATCH_MIN_WAIT_S",
    "STREAMER_BATCH_MODE", "STREAMER_BENCH_GENERATOR", "STREAMER_BENCH_PEER_SITE",
    "STREAMER_BUCKET_SECONDS",
    "STREAMER_BUCKET_TTL_S", "STREAMER_BUNDLE_BUILD_THREADS", "STREAMER_BUNDLE_DIR",
    "STREAMER_BUNDLE_VARIANT", "STREAMER_CACHE_DIR", "STREAMER_COMMIT_INTERVAL_S",
    "STREAMER_COMMIT_STALL_TIMEOUT_S", "STREAMER_DATA_DIR", "STREAMER_DEDUP_TTL_S",
    "STREAMER_DEDUP_WINDOW_MESSAGES", "STREAMER_DEMO_ALERT_WAIT_S",
    "STREAMER_DEMO_FULL_BUILD", "STREAMER_DLQ_SUFFIX",
    "STREAMER_HEALTH_PROBE_INTERVAL_S", "STREAMER_HEALTH_PROBE_TIMEOUT_S",
    "STREAMER_HEALTH_STALE_S", "STREAMER_INFER_THREADS", "STREAMER_KAFKA_BOOTSTRAP",
    "STREAMER_KAFKA_BROKERS", "STREAMER_KAFKA_CONTROLLER_PORT", "STREAMER_KAFKA_HEAP",
    "STREAMER_KAFKA_HEARTBEAT_INTERVAL_S", "STREAMER_KAFKA_LINGER_MS", "STREAMER_KAFKA_PORT",
    "STREAMER_KAFKA_REQUEST_TIMEOUT_S", "STREAMER_KAFKA_SASL_MECHANISM",
    "STREAMER_KAFKA_SASL_PASSWORD", "STREAMER_KAFKA_SASL_PASSWORD_FILE",
    "STREAMER_KAFKA_SASL_USERNAME", "STREAMER_KAFKA_SECURITY_PROTOCOL",
    "STREAMER_KAFKA_SESSION_TIMEOUT_S", "STREAMER_KAFKA_SSL_CAFILE", "STREAMER_KAFKA_VERSION",
    "STREAMER_LABELLED_DATA_DIR", "STREAMER_LATENCY_PUSH_INTERVAL_S",
    "STREAMER_LATENCY_WINDOW_S", "STREAMER_LATENCY_SLICE_S",
    "STREAMER_LATENCY_SLICE_RETENTION_S", "STREAMER_DEMO_WORKER_READY_TIMEOUT_S",
    "STREAMER_DEMO_WARMUP_MESSAGES", "STREAMER_DEMO_RATE_SHARE",
    "STREAMER_WEB_DASHBOARD_RATE_WINDOW_S",
    "STREAMER_LATENCY_TARGET_MS", "STREAMER_MAX_FUTURE_SKEW_S", "STREAMER_MAX_ID_CHARS",
    "STREAMER_MARKETS_FILE", "STREAMER_MAX_MESSAGE_BYTES", "STREAMER_MAX_TEXT_CHARS",
    "STREAMER_MAX_TICKERS_PER_EVENT",
    "STREAMER_MODEL_WATCH_S",
    "STREAMER_ORT_INTRA_OP_THREADS", "STREAMER_ORT_TENSORRT", "STREAMER_PROCESSING_GUARANTEE",
    "STREAMER_PRODUCE_DEADLINE_S", "STREAMER_PRODUCE_RETRY_BACKOFF_MAX_S",
    "STREAMER_PRODUCE_RETRY_BACKOFF_S", "STREAMER_REDIS_KEY_PREFIX", "STREAMER_REDIS_PASSWORD",
    "STREAMER_REDIS_PASSWORD_FILE", "STREAMER_REDIS_PORT", "STREAMER_REDIS_READ_PAGE",
    "STREAMER_REDIS_CLUSTER", "STREAMER_REDIS_CLUSTER_PORT",
    "STREAMER_REDIS_CLUSTER_NODE_TIMEOUT_MS", "STREAMER_REDIS_WAIT_REPLICAS",
    "STREAMER_REDIS_WAIT_TIMEOUT_MS",
    "STREAMER_REDIS_RETRY_ATTEMPTS", "STREAMER_REDIS_RETRY_BACKOFF_MAX_S",
    "STREAMER_REDIS_RETRY_BACKOFF_S", "STREAMER_REDIS_TIMEOUT_S", "STREAMER_REDIS_TLS_CA_FILE",
    "STREAMER_REDIS_URL", "STREAMER_REDIS_USERNAME", "STREAMER_SCORER",
    "STREAMER_SCORE_INT8_ROWS_ALONE", "STREAMER_SCORE_MAX_GROUP", "STREAMER_SCORE_MAX_TOKENS",
    "STREAMER_SCORE_QUEUE_DEPTH",
    "STREAMER_SHUTDOWN_TIMEOUT_S", "STREAMER_STACK_START_TIMEOUT_S",
    "STREAMER_STARTUP_RETRY_BACKOFF_MAX_S", "STREAMER_STARTUP_RETRY_BACKOFF_S",
    "STREAMER_STARTUP_WAIT_S", "STREAMER_SYMBOLS_FILE", "STREAMER_TOPIC_ALERTS",
    "STREAMER_TOPIC_CHAT", "STREAMER_TOPIC_NEWS", "STREAMER_TOPIC_PARTITIONS",
    "STREAMER_TOPIC_SCORED", "STREAMER_TORCH_CUDA_GRAPHS", "STREAMER_TORCH_DEVICE",
    "STREAMER_TORCH_MAX_GRAPHS", "STREAMER_TORCH_THREADS", "STREAMER_WEB_HOST",
    "STREAMER_WEB_PORT", "STREAMER_WEB_TOKEN", "STREAMER_WORKER_ID",
    "STREAMER_WORKER_MAX_RESTARTS", "STREAMER_WORKER_RESTART_BACKOFF_S",
    "STREAMER_WORKER_RESTART_WINDOW_S", "STREAMER_WORKER_LAG_MAX_RECORDS",
    "STREAMER_WORKER_LAG_EXPORT_INTERVAL_S", "STREAMER_WORKER_LAG_EXPORT_PORT",
    "STREAMER_TOPIC_REPLICATION_FACTOR", "STREAMER_TOPIC_MIN_INSYNC_REPLICAS",
    "STREAMER_TOPIC_RETENTION_MS", "STREAMER_LOG_FORMAT",
    "STREAMER_SCHEMA_STRICT",
}


def test_the_environment_variables_are_the_ones_users_already_set() -> None:
    read = {name for _, env, _, _ in Settings(_env_file=None).variables()
             for name in env.split(" / ")}
    assert read == VARIABLES


def test_each_variable_reaches_its_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("STREAMER_APP_ID", "desk")
    monkeypatch.setenv("STREAMER_ALERTS_ENABLED", "false")
    monkeypatch.setenv("STREAMER_ALERT_Z_THRESHOLD", "5.5")
    monkeypatch.setenv("STREAMER_REDIS_KEY_PREFIX", "p1")
    monkeypatch.setenv("STREAMER_BATCH_MAX_SIZE", "12")
    monkeypatch.setenv("STREAMER_DLQ_SUFFIX", ".dead")
    s = Settings(_env_file=None)
    assert (s.kafka.bootstrap, s.worker.app_id, s.alerts.enabled) == ("broker:9092", "desk", False)
    assert (s.alerts.z_threshold, s.redis.key_prefix, s.batching.max_size) == (5.5, "p1", 12)
    assert s.topics.dlq("news") == "news.dead"
    assert s.alerts.detector(s.aggregate.bucket_seconds).z_threshold == 5.5


def test_an_env_file_reaches_every_section(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("REDIS_URL=redis://r:1/0\nSTREAMER_WEB_PORT=7000\nSTREAMER_ADAPTIVE_WINDOW=64\n")
    s = Settings(_env_file=env)
    assert (s.redis.url, s.web.port, s.adaptive.window) == ("redis://r:1/0", 7000, 64)


def test_flat_names_set_and_replace_any_field_with_validation() -> None:
    s = Settings(_env_file=None, redis_key_prefix="a1", alert_warmup_s=60, REDIS_URL="redis://x")
    assert (s.redis.key_prefix, s.alerts.warmup_s, s.redis.url) == ("a1", 60, "redis://x")
    t = s.replace(batch_max_wait_s="0.2", topic_news="wire")
    assert (t.batching.max_wait_s, t.topics.news, t.redis.key_prefix) == (0.2, "wire", "a1")
    assert s.batching.max_wait_s != 0.2  # a copy
    with pytest.raises(ValidationError):
        s.replace(batch_max_size=0)


def test_an_unknown_setting_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="redis_key_prefx"):
        Settings(_env_file=None, redis_key_prefx="a1")


def test_a_worker_environment_is_read_as_the_worker_reads_it() -> None:
    s = Settings(_env_file=None).with_env({"STREAMER_WORKER_ID": "w-1", "PATH": "/bin",
                                           "STREAMER_ALERT_SCOPES": '["ticker"]'})
    assert s.worker.id == "w-1" and s.alerts.scopes == ("ticker",)


def test_the_local_clusters_defaults_follow_the_two_choices() -> None:
    """STREAMER_KAFKA_BROKERS and STREAMER_REDIS_CLUSTER alone point every client at the
    local clusters as `streamer stack up --kafka-brokers 3 --redis-cluster` runs them."""
    one = Settings(_env_file=None)
    assert (one.kafka.bootstrap, one.topics.replication_factor, one.topics.min_insync_replicas,
            one.redis.url, one.redis.wait_replicas) == (
        "127.0.0.1:9092", 1, None, "redis://127.0.0.1:6379/0", 0)
    s = Settings(_env_file=None, kafka_brokers=3, kafka_port=19092, redis_cluster=True,
                 redis_cluster_port=17000)
    assert s.kafka.bootstrap == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    assert (s.topics.replication_factor, s.topics.min_insync_replicas) == (3, 2)
    assert (s.redis.url, s.redis.wait_replicas) == ("redis://127.0.0.1:17000/0", 1)
    two = Settings(_env_file=None, kafka_brokers=2)
    assert (two.topics.replication_factor, two.topics.min_insync_replicas) == (2, None)
    # They follow a replace (run-demo's flags), back to one node too.
    back = Settings(_env_file=None, kafka_port=19092, redis_cluster_port=17000)
    assert s.replace(kafka_brokers=1, redis_cluster=False).model_dump() == back.model_dump()


def test_explicit_settings_win_over_the_cluster_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_KAFKA_BROKERS", "3")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("STREAMER_TOPIC_MIN_INSYNC_REPLICAS", "1")
    monkeypatch.setenv("STREAMER_REDIS_CLUSTER", "true")
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6380/0")
    monkeypatch.setenv("STREAMER_REDIS_WAIT_REPLICAS", "0")
    s = Settings(_env_file=None)
    assert (s.kafka.bootstrap, s.topics.replication_factor, s.topics.min_insync_replicas) == (
        "broker:9092", 3, 1)
    assert (s.redis.url, s.redis.wait_replicas) == ("rediss://cache:6380/0", 0)
    # Set stays set through a replace of something else.
    t = s.replace(kafka_brokers=1, topic_partitions=8)
    assert (t.kafka.bootstrap, t.topics.min_insync_replicas, t.topics.replication_factor) == (
        "broker:9092", 1, 1)
