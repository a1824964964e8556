"""A real worker process serves a bundle: Kafka in, ONNX Runtime scores, Kafka out."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Namespace, WorkerProcess, mixed_stream, produce, read_topic, wait_consumed

from streamer.bundle.load import load_bundle

pytestmark = pytest.mark.slow


def test_the_worker_scores_through_the_bundle(
    kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path
) -> None:
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path, partitions=2, extra_env={
        "STREAMER_SCORER": "onnx", "STREAMER_BUNDLE_DIR": str(tiny_bundle),
    })
    messages = mixed_stream(ns, seed=5, minutes=1, bad_fraction=0.0, big_message=False)
    worker = WorkerProcess(ns, "onnx").start()
    try:
        worker.wait_ready()
        produce(ns, messages)
        accounts = wait_consumed(ns, len(messages), workers=[worker])
    finally:
        worker.stop()
    assert sum(a.scored for a in accounts) == len(messages)
    scored = read_topic(ns, ns.settings().topics.scored, len(messages))
    assert len(scored) == len(messages)
    manifest = load_bundle(tiny_bundle, verify=()).manifest
    assert {ev["scorer"] for ev in scored} == {f"onnx-cpu:{manifest.default_variant['cpu']}"}
    topics = set(manifest.head("topic").labels)
    assert {ev["topic"]["label"] for ev in scored} <= topics
