"""Issue 31's done-when, as a test: the same seeded demo stream through a real worker on
the 3-node Kafka cluster + Redis Cluster and on one broker + one redis-server gives the
same exact summary (what `streamer summary` prints: messages consumed, scored and
dead-lettered per input topic; sentiment counts per topic, ticker, market and stream).

The cluster worker is configured as a user configures it after `streamer stack up
--kafka-brokers 3 --redis-cluster`: STREAMER_KAFKA_BROKERS=3 and STREAMER_REDIS_CLUSTER
=true, replication, min ISR and WAIT following from them (settings.derived_defaults).
Both workers score with the real engine (ONNX Runtime, the tiny bundle's INT8 student,
one text per call, so a label never depends on the batch it came in; the cached tiny
bundle when one is complete).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Namespace, WorkerProcess, mixed_stream, produce, wait_committed, wait_consumed
from servers import free_ports

from streamer.aggregate import TrendStore
from streamer.aggregate.summary import accounts, trends
from streamer.bundle.locate import is_complete_bundle
from streamer.devstack import LocalKafkaCluster, LocalRedisCluster
from streamer.produce.sender import Outgoing
from streamer.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

Summary = dict[str, Any]


def _summary(ns: Namespace) -> Summary:
    """`streamer summary`'s figures for this namespace, by input kind (its topic names
    carry the namespace's id) and scope key."""
    settings = ns.settings()
    kind = {settings.topics.news: "news", settings.topics.chat: "chat"}

    async def read() -> Summary:
        store = TrendStore.connect(settings.redis, settings.aggregate)
        try:
            accs, rows = await accounts(store), await trends(store)
        finally:
            await store.close()
        return {
            "accounts": {kind[a.topic]: (a.consumed, a.scored, a.dead_lettered, a.balanced)
                         for a in accs},
            # Exact counts; the mean negative probability is a float sum whose order
            # follows the batches, so it is compared to 1e-9.
            "trends": {(r.scope, r.key): (r.messages, r.counts) for r in rows},
            "neg_prob": {(r.scope, r.key): r.mean_negative_prob for r in rows},
        }

    return asyncio.run(read())


def _retarget(messages: list[Outgoing], src: Settings, dst: Settings) -> list[Outgoing]:
    """The same records for the other namespace's topics."""
    topics = {src.topics.news: dst.topics.news, src.topics.chat: dst.topics.chat}
    return [Outgoing(topics[m.topic], m.key, m.value) for m in messages]


@pytest.fixture(scope="module")
def bundle(request: pytest.FixtureRequest) -> Path:
    """The session's tiny bundle; one `streamer models build --profile tiny` left complete
    in the cache spares that build (minutes on a busy 2-core machine)."""
    cached = Settings(_env_file=None).paths.bundles / "tiny"
    if is_complete_bundle(cached):
        return cached
    built: Path = request.getfixturevalue("tiny_bundle")
    return built


@pytest.fixture
def namespaces(kafka_bootstrap: str, redis_url: str, kafka_cluster: LocalKafkaCluster,
               redis_cluster: LocalRedisCluster, bundle: Path, tmp_path: Path
               ) -> Iterator[tuple[Namespace, Namespace]]:
    scorer = {"STREAMER_SCORER": "onnx", "STREAMER_BUNDLE_DIR": str(bundle)}
    single = Namespace(kafka_bootstrap, redis_url, tmp_path / "single", extra_env=scorer)
    # The bootstrap list and the URL are what the settings derive from the local ports
    # (the harness names both explicitly); the rest follows from the two choices.
    cluster = Namespace(kafka_cluster.bootstrap, redis_cluster.url, tmp_path / "cluster",
                        extra_env={**scorer, "STREAMER_KAFKA_BROKERS": "3",
                                   "STREAMER_REDIS_CLUSTER": "true"})
    yield single, cluster


def test_the_demo_stream_gives_the_same_summary_on_the_clusters_as_on_one_node(
        namespaces: tuple[Namespace, Namespace], kafka_cluster: LocalKafkaCluster) -> None:
    single, cluster = namespaces
    s = cluster.settings()
    # What a user gets from the two choices alone.
    assert (s.topics.replication_factor, s.topics.min_insync_replicas) == (3, 2)
    assert s.redis.cluster and s.redis.wait_replicas == 1
    messages = mixed_stream(single, seed=31, minutes=2.5, bad_fraction=0.04, big_message=False)
    runs = [(single, messages), (cluster, _retarget(messages, single.settings(), s))]
    workers = [WorkerProcess(ns, name).start() for ns, name in ((single, "one"),
                                                                 (cluster, "cluster"))]
    try:
        for worker in workers:  # both start at once: the 2 cores overlap their start-ups
            worker.wait_ready(180)
        for ns, stream in runs:
            produce(ns, stream)
        for (ns, stream), worker in zip(runs, workers, strict=True):
            wait_consumed(ns, len(stream), timeout=180, workers=[worker])
            wait_committed(ns, timeout=120, workers=[worker])
    finally:
        for worker in workers:
            worker.stop()
    # The worker created the input topics as the settings say: on all three brokers.
    for p in kafka_cluster.partitions(s.topics.news):
        assert len(p.replicas) == 3, p
    one, many = _summary(single), _summary(cluster)
    assert one["accounts"] == many["accounts"]
    assert sum(n[0] for n in one["accounts"].values()) == len(messages)
    assert all(balanced for *_, balanced in one["accounts"].values())
    assert one["trends"] == many["trends"]
    assert {scope for scope, _ in one["trends"]} >= {"topic", "ticker", "stream"}
    assert one["neg_prob"].keys() == many["neg_prob"].keys()
    for key, prob in one["neg_prob"].items():
        assert many["neg_prob"][key] == pytest.approx(prob, rel=1e-9, abs=1e-12), key


def test_stack_status_shows_every_redis_cluster_node(redis_cluster: LocalRedisCluster,
                                                    tmp_path: Path) -> None:
    """`streamer stack status` (the installed command) on the session's Redis Cluster:
    one row per node with its role, pid and RSS, and the same in JSON."""
    s = redis_cluster.settings
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STREAMER_", "KAFKA_", "REDIS_"))}
    env.update({"STREAMER_DATA_DIR": str(s.paths.data_dir), "COLUMNS": "160",
                "STREAMER_REDIS_CLUSTER_PORT": str(s.stack.redis_cluster_port),
                "STREAMER_KAFKA_PORT": str(free_ports(1)[0]),
                "STREAMER_REDIS_PORT": str(free_ports(1)[0])})
    exe = Path(sys.executable).with_name("streamer")

    def status(*args: str) -> str:
        proc = subprocess.run([str(exe), "stack", "status", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    nodes = json.loads(status("--json"))["redis_cluster"]["nodes"]
    assert [n["port"] for n in nodes] == redis_cluster.ports
    assert sorted(n["role"] for n in nodes) == ["master"] * 3 + ["replica"] * 3
    assert all(n["running"] and n["pid"] and n["rss_mb"] for n in nodes)
    table = status()
    for port in redis_cluster.ports:
        assert f"redis node :{port}" in table, table
    assert "replica of :" in table and "slots" in table
