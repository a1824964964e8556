"""Local Kafka + Redis for development and tests, without Docker."""

from __future__ import annotations

from pydantic import BaseModel

from streamer.devstack._proc import StackError, free_port
from streamer.devstack.kafka import KafkaNodeStatus, KafkaStatus, LocalKafka
from streamer.devstack.kafka_cluster import LocalKafkaCluster, PartitionState, QuorumStatus
from streamer.devstack.redis_cluster import ClusterNodeStatus, ClusterStatus, LocalRedisCluster
from streamer.devstack.redis_server import LocalRedis, RedisStatus
from streamer.settings import Settings

__all__ = [
    "ClusterNodeStatus",
    "ClusterStatus",
    "KafkaNodeStatus",
    "KafkaStatus",
    "LocalKafka",
    "LocalKafkaCluster",
    "LocalRedis",
    "LocalRedisCluster",
    "PartitionState",
    "QuorumStatus",
    "RedisStatus",
    "StackError",
    "StackStatus",
    "free_port",
    "stack_down",
    "stack_kafka",
    "stack_redis",
    "stack_status",
    "stack_up",
]


class StackStatus(BaseModel):
    kafka: KafkaStatus  # one node, or every node of the cluster (``kafka.nodes``)
    redis: RedisStatus  # the lone redis-server
    # The local Redis Cluster, when chosen (STREAMER_REDIS_CLUSTER) or started here before.
    redis_cluster: ClusterStatus | None = None


def stack_kafka(settings: Settings, brokers: int | None = None) -> LocalKafka | LocalKafkaCluster:
    """The local Kafka the stack commands act on: a cluster when ``brokers`` (default:
    STREAMER_KAFKA_BROKERS) is above 1 or, when it is not given, a cluster that runs;
    else the single node. Both listen on STREAMER_KAFKA_PORT, so only one can run."""
    cluster = LocalKafkaCluster(settings, brokers)
    wanted = brokers or settings.stack.kafka_brokers
    if wanted > 1 or (brokers is None and cluster.is_running()):
        return cluster
    if cluster.is_running():
        raise StackError("the local Kafka cluster runs on these ports; stop it first "
                         "(`streamer stack down`), its data stays")
    return LocalKafka(settings)


def stack_redis(settings: Settings, cluster: bool | None = None) -> LocalRedis | LocalRedisCluster:
    """The local Redis the stack commands start: the Redis Cluster (3 masters + 3
    replicas) when ``cluster`` (default: STREAMER_REDIS_CLUSTER), else one redis-server.
    They listen on different ports, so either may run beside the other."""
    wanted = settings.redis.cluster if cluster is None else cluster
    return LocalRedisCluster(settings) if wanted else LocalRedis(settings)


def stack_status(settings: Settings) -> StackStatus:
    cluster = LocalRedisCluster(settings)
    shown = settings.redis.cluster or cluster.exists()
    return StackStatus(kafka=stack_kafka(settings).status(), redis=LocalRedis(settings).status(),
                       redis_cluster=cluster.status() if shown else None)


def stack_up(settings: Settings, kafka_brokers: int | None = None,
             redis_cluster: bool | None = None) -> StackStatus:
    """Start Redis (fast; the Redis Cluster when ``redis_cluster``, default
    STREAMER_REDIS_CLUSTER) then Kafka (``kafka_brokers`` nodes; default
    STREAMER_KAFKA_BROKERS); both calls are no-ops for servers already running."""
    stack_redis(settings, redis_cluster).start()
    stack_kafka(settings, kafka_brokers).start()
    return stack_status(settings)


def stack_down(settings: Settings) -> StackStatus:
    """Stop whichever local Redis and Kafka run, single node or cluster; each is
    attempted even when stopping another fails (the first error is raised)."""
    errors: list[StackError] = []
    for server in (LocalRedis(settings), LocalRedisCluster(settings), LocalKafka(settings),
                   LocalKafkaCluster(settings)):
        try:
            server.stop()
        except StackError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return stack_status(settings)
