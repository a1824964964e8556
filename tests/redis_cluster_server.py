"""A real local Redis Cluster for the tests (3 masters + 3 replicas, Debian's
redis-server), on free ports with a fresh temp data dir; stopped at session end. Like
the other servers (tests/servers.py), it fails under ``CI=true`` when it cannot start
and skips elsewhere."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import running

from streamer.devstack import StackError
from streamer.devstack._proc import port_in_use
from streamer.devstack.redis_cluster import BUS_OFFSET, NODES, LocalRedisCluster
from streamer.settings import Settings

# Long enough that a node slowed by a busy 2-core machine is not failed over by mistake,
# short enough that a killed master's replica takes over within seconds.
NODE_TIMEOUT_MS = 2_000


def free_cluster_port(rng: random.Random | None = None) -> int:
    """A first port with it, the next five and each one's bus port (+10000) all free."""
    rng = rng or random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 30_000 - NODES)
        if not any(port_in_use(base + i + bus) for i in range(NODES) for bus in (0, BUS_OFFSET)):
            return base
    raise StackError("no six consecutive free ports (and their bus ports) in 20000-30000")


def cluster_stack_settings(data_dir: Path, url_scheme: str = "redis", **values: Any) -> Settings:
    base = free_cluster_port()
    return Settings(_env_file=None, data_dir=data_dir, redis_cluster_port=base,
                    redis_cluster_node_timeout_ms=NODE_TIMEOUT_MS,
                    REDIS_URL=f"{url_scheme}://127.0.0.1:{base}/0", **values)


def cluster_settings(cluster: LocalRedisCluster, **overrides: Any) -> Settings:
    """Client settings for ``cluster``: the cluster client, a key prefix of its own."""
    values: dict[str, Any] = {"redis_key_prefix": f"t{uuid.uuid4().hex[:8]}",
                              "bucket_seconds": 10, "alert_warmup_s": 240}
    values.update(overrides)
    return Settings(_env_file=None, REDIS_URL=cluster.url, redis_cluster=True,
                    redis_username=cluster.settings.redis.username,
                    redis_password=cluster.settings.redis.password,
                    redis_tls_ca_file=cluster.settings.redis.tls_ca_file, **values)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A started local Redis Cluster for the whole session."""
    cluster = LocalRedisCluster(cluster_stack_settings(tmp_path_factory.mktemp("rcluster")))
    with running(cluster, "local Redis Cluster") as started:
        yield started


def restore(cluster: LocalRedisCluster, timeout_s: float = 60) -> None:
    """Put the cluster back whole after a fault test: every node running and answering,
    every slot served, each master with a replica in sync."""
    for port, node in cluster.nodes.items():
        if node.is_running():
            cluster.resume(port)
        else:
            cluster.restart(port)
    cluster.wait_ok(timeout_s)
    cluster.wait_replicated(timeout_s)
