"""A worker that starts while Kafka or Redis is not answering waits for it (bounded, with
backoff and a log line), instead of exiting as if it needed an operator (exit 78), which
its supervisor would never restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import Namespace, WorkerProcess
from servers import free_ports, local_settings

from streamer.cli.supervise import NEEDS_OPERATOR
from streamer.devstack import LocalKafka, LocalRedis

pytestmark = pytest.mark.slow


def test_a_worker_started_before_kafka_waits_for_it(redis_url: str, tmp_path: Path) -> None:
    kafka = LocalKafka(local_settings(tmp_path / "kafka"))
    ns = Namespace(kafka.bootstrap, redis_url, tmp_path, extra_env={
        "STREAMER_STARTUP_WAIT_S": "240", "STREAMER_WORKER_MAX_RESTARTS": "0"})
    worker = WorkerProcess(ns, "early").start()
    try:
        kafka.start()
        worker.wait_ready(timeout=240)
        assert "Kafka: " in worker.log.read_text() and "retrying in" in worker.log.read_text()
    finally:
        worker.stop()
        kafka.stop()


def test_a_worker_started_before_redis_waits_for_it(kafka_bootstrap: str,
                                                      tmp_path: Path) -> None:
    (port,) = free_ports(1)
    redis = LocalRedis(local_settings(tmp_path / "redis").replace(**{"redis_port": port}))
    ns = Namespace(kafka_bootstrap, redis.url, tmp_path, extra_env={
        "STREAMER_STARTUP_WAIT_S": "120", "STREAMER_WORKER_MAX_RESTARTS": "0"})
    worker = WorkerProcess(ns, "early").start()
    try:
        # Until the worker has said it is waiting for Redis, then Redis comes up.
        for _ in range(120):
            if "Redis: " in worker.log.read_text(errors="replace"):
                break
            assert worker.proc is not None and worker.proc.poll() is None, worker.tail()
            time.sleep(0.5)
        redis.start()
        worker.wait_ready(timeout=120)
    finally:
        worker.stop()
        redis.stop()


def test_kafka_that_never_answers_ends_the_start_with_exit_1_not_78(
    redis_url: str, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    ns = Namespace(f"127.0.0.1:{port}", redis_url, tmp_path, extra_env={
        "STREAMER_STARTUP_WAIT_S": "3", "STREAMER_STARTUP_RETRY_BACKOFF_S": "0.5",
        "STREAMER_WORKER_MAX_RESTARTS": "0"})
    worker = WorkerProcess(ns, "never").start()
    assert worker.proc is not None
    rc = worker.proc.wait(120)
    log = worker.log.read_text(errors="replace")
    assert rc == 1 and rc != NEEDS_OPERATOR, log
    assert "did not answer" in log and "retrying in" in log, log
