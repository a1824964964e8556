"""The Faust app: input topics, scoring agents, web views, timers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import faust
from faust.types import TP, Message

from agents.alerting import register_alerting
from agents.health import KafkaProbe
from agents.runtime import Runtime
from agents.scoring import make_scoring_agent
from agents.transactions import (
    commit_acked_before_revoke,
    exit_when_fenced,
    install_abort_on_rewind,
    stamp_transactional_commits,
)
from agents.views import readiness, register_views
from streamer.kafka.security import faust_credentials

log = logging.getLogger(__name__)


class ConsumeStampSensor(faust.Sensor):
    """Stamps each record when Faust hands it to a stream: the 'consumed' moment."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self._rt = runtime
        # A stream is ready for its first record from the start.
        runtime.stamps.started_ms = runtime.clock.now_ms()

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        self._rt.stamps.put((tp.topic, tp.partition, offset), self._rt.clock.now_ms())


def create_app(runtime: Runtime) -> faust.App:
    s = runtime.settings
    brokers = [f"kafka://{hp.strip()}" for hp in s.kafka.bootstrap.split(",") if hp.strip()]
    # No tables, so workers on one host can share Faust's data directory.
    datadir = Path(s.paths.data_dir) / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        s.worker.app_id,
        broker=brokers,
        broker_credentials=faust_credentials(s.kafka),
        processing_guarantee=s.worker.processing_guarantee,
        web_host=s.web.host,
        web_bind=s.web.host,
        web_port=s.web.port,
        topic_partitions=s.topics.partitions,
        topic_replication_factor=s.topics.replication_factor,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=s.commit.interval_s,
        broker_commit_livelock_soft_timeout=s.commit.stall_timeout_s,
        broker_session_timeout=s.kafka.session_timeout_s,
        broker_heartbeat_interval=s.kafka.heartbeat_interval_s,
        producer_acks=-1,
        datadir=str(datadir),
        web_stats_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_tables_enabled=False,
    )
    app.sensors.add(ConsumeStampSensor(runtime))
    # Not behind app.in_transaction: that cached property is False until the Worker
    # exists, and reading it here would turn exactly-once off for good.
    exit_when_fenced(app)
    alerts = register_alerting(app, runtime)
    for name in s.topics.inputs:
        topic = app.topic(
            name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        app.agent(topic, name=f"score-{name}", concurrency=1)(
            make_scoring_agent(app, runtime, alerts)
        )
    register_views(app, runtime)

    @app.task
    async def install_commit_gate() -> None:
        # The consumer exists once the app runs; commits from here on wait for batches,
        # rebalances abort what a rewound partition's transaction already holds, and the
        # livelock detector hears of transactional commits.
        consumer: Any = app.consumer
        force_commit = consumer.force_commit
        consumer.force_commit = runtime.gate.wrap(force_commit)
        if app.in_transaction:
            commit_acked_before_revoke(app, runtime.gate, force_commit)
            install_abort_on_rewind(app, runtime.gate)
            stamp_transactional_commits(app)
        runtime.warm = True

    @app.task
    async def probe_health() -> None:
        probe = runtime.health.probes["kafka"]
        try:
            # The gauge follows every probe round, whether or not anyone asks /readyz.
            await runtime.health.run(after_each=lambda: readiness(app, runtime))
        finally:
            if isinstance(probe, KafkaProbe):
                await probe.close()

    @app.task
    async def watch_model() -> None:
        # Model upgrades without a restart (streamer/score/watch.py); never raises.
        if runtime.watcher.enabled:
            try:
                await runtime.watcher.run()
            finally:
                runtime.watcher.shutdown()

    @app.timer(interval=s.worker.latency_push_interval_s)
    async def push_latency() -> None:
        keys, redis, latency = runtime.store.keys, runtime.store.redis, runtime.latency
        key = keys.latency(runtime.worker_id)
        slices_key = keys.latency_slices(runtime.worker_id)
        slices = latency.take_slices()
        try:
            await redis.hset(key, mapping=latency.encode())  # type: ignore[misc]
            await redis.expire(key, 86_400)
            # The recent-window views: the slices changed since the last push, and
            # those past the retention removed.
            if slices:
                await redis.hset(slices_key, mapping=slices)  # type: ignore[misc]
            retention = s.worker.latency_slice_retention_s
            expired = latency.expired_fields(runtime.clock.now_ms() / 1000.0, retention)
            if expired:
                await redis.hdel(slices_key, *expired)  # type: ignore[misc]
            await redis.expire(slices_key, retention + latency.slice_s)
        except Exception as exc:  # metrics must never stop the stream
            latency.retake()  # the next push sends those slices again
            log.warning("could not push latency histograms: %s", exc)

    return app
