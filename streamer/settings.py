"""All tunables in one typed place; each field reads ``STREAMER_<NAME>`` from the environment.

Two names are also read without the prefix because the tooling around Kafka and
Redis commonly sets them: ``KAFKA_BOOTSTRAP`` and ``REDIS_URL``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.cwd() / ".data"


def _default_cache() -> Path:
    return Path.home() / ".cache" / "streamer"


def _default_labelled_data() -> Path:
    # The shared data sits beside the repository: <repo>/../shared/data.
    return Path(__file__).resolve().parents[2] / "shared" / "data"


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
    web_host: str = Field("127.0.0.1", description="Worker web server bind address.")
    web_port: int = Field(6066, description="Worker web server port.")
    batch_max_size: int = Field(64, ge=1, description="Max events per micro-batch.")
    batch_max_wait_s: float = Field(
        0.05, gt=0, description="Max seconds the first event of a batch waits for more."
    )
    infer_threads: int = Field(
        1, ge=1, description="Worker threads for tokenization+inference (off the event loop)."
    )
    commit_interval_s: float = Field(1.0, gt=0, description="Kafka offset commit interval.")
    worker_id: str | None = Field(None, description="Worker name in metrics; default host-pid.")
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

    # --- tickers ----------------------------------------------------------------------------
    symbols_file: Path | None = Field(
        None, description="CSV 'symbol,name[,alias...]' overriding the built-in symbol list."
    )
    max_tickers_per_event: int = Field(16, ge=1, description="Cap on tickers kept per event.")

    # --- scoring --------------------------------------------------------------------------
    scorer: Literal["auto", "baseline", "onnx"] = Field(
        "auto",
        description="'auto': the model bundle (built on first run when missing); "
        "'baseline': the Naive Bayes baseline; 'onnx': the bundle, or fail.",
    )
    bundle_dir: Path | None = Field(None, description="Model bundle directory to load.")
    labelled_data_dir: Path = Field(
        default_factory=_default_labelled_data,
        description="Labelled 'text,label' CSVs (tfn-sentiment, phrasebank, reuters-topics).",
    )

    # --- aggregates -----------------------------------------------------------------------
    bucket_seconds: int = Field(10, ge=1, description="Width of a Redis trend bucket (event time).")
    bucket_ttl_s: int = Field(
        7_200, ge=60, description="Trend bucket expiry; bounds Redis memory."
    )
    redis_key_prefix: str = Field("st", description="Prefix of every Redis key the app writes.")
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

    @property
    def input_topics(self) -> tuple[str, str]:
        return (self.topic_news, self.topic_chat)

    def dlq_topic(self, topic: str) -> str:
        return f"{topic}{self.dlq_suffix}"

    @property
    def bundles_dir(self) -> Path:
        return self.cache_dir / "bundles"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
