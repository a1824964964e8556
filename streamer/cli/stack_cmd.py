"""``streamer stack up|down|status|fetch``: the local Kafka + Redis servers (no Docker)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from streamer.cli.common import ExitCode, fail
from streamer.devstack import (
    ClusterStatus,
    KafkaStatus,
    LocalKafka,
    LocalKafkaCluster,
    LocalRedis,
    LocalRedisCluster,
    RedisStatus,
    StackError,
    StackStatus,
    stack_kafka,
    stack_redis,
    stack_status,
)
from streamer.settings import Settings, get_settings

_console = Console()


def _fail(exc: StackError) -> NoReturn:
    """One line (the first of the message); a server's log tail, when given, below it."""
    first, _, rest = str(exc).partition("\n")
    fail(first, code=ExitCode.FAILED, detail=rest)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


_Row = tuple[str, bool, int | None, str, str, str]  # server, running, pid, role, address, RSS


def _kafka_rows(kafka: KafkaStatus) -> list[_Row]:
    """One row per node; a node's controller port follows its client address."""
    name = "kafka" if kafka.brokers == 1 else "kafka node {}"
    return [(name.format(n.node_id), n.running, n.pid, n.roles,
             f"127.0.0.1:{n.port} +{n.controller_port}", _mb(n.rss_mb)) for n in kafka.nodes]


def _redis_rows(redis: RedisStatus, cluster: ClusterStatus | None) -> list[_Row]:
    """The lone redis-server, then one row per Redis Cluster node (its role now: a
    fail-over swaps a master and its replica)."""
    rows: list[_Row] = [("redis", redis.running, redis.pid, "standalone", redis.url,
                         _mb(redis.rss_mb))]
    for n in cluster.nodes if cluster is not None else []:
        role = {"master": f"master, {n.slots} slots",
                "replica": f"replica of :{n.master_port}"}.get(n.role, n.role)
        rows.append((f"redis node :{n.port}", n.running and not n.paused, n.pid,
                     role + (" (paused)" if n.paused else ""), f"127.0.0.1:{n.port}",
                     _mb(n.rss_mb)))
    return rows


def _status_table(status: StackStatus) -> Table:
    kafka, redis, cluster = status.kafka, status.redis, status.redis_cluster
    data = [str(kafka.data_dir), str(redis.data_dir)]
    if cluster is not None:
        data.append(str(cluster.data_dir))
    title = f"local stack: Kafka {kafka.version}, Redis {redis.version or 'not installed'}"
    if cluster is not None:
        title += (f"; Redis Cluster {cluster.state or 'not answering'}, "
                  f"{cluster.rss_mb:.0f} MB")
    table = Table(title=title, title_justify="left", caption="data: " + ", ".join(data),
                  caption_justify="left")
    # no_wrap: names and addresses are read and copied whole; a narrow terminal folds roles.
    for column in ("server", "state", "pid", "role", "address", "RSS MB"):
        table.add_column(column, no_wrap=column != "role", overflow="fold")
    rows = [*_kafka_rows(kafka), *_redis_rows(redis, cluster)]
    for name, running, pid, role, address, rss in rows:
        state = "[green]running[/]" if running else "[dim]stopped[/]"
        table.add_row(name, state, str(pid or "-"), role, address, rss)
    return table


def _timed(what: str, start: Callable[[], str]) -> tuple[str, float]:
    """(what ``start`` returns, seconds), under a spinner that says ``what``."""
    with _console.status(what):
        t0 = time.monotonic()
        address = start()
        return address, time.monotonic() - t0


@click.group("stack")
def stack() -> None:
    """Run a real Kafka broker and redis-server locally (data under STREAMER_DATA_DIR)."""


@stack.command("up")
@click.option("--kafka-brokers", type=click.IntRange(1, 9), default=None,
              help="Kafka nodes: 1, or a KRaft cluster of combined broker+controller "
              "nodes (3: replication factor 3, min.insync.replicas 2) [default: "
              "$STREAMER_KAFKA_BROKERS or 1].")
@click.option("--redis-cluster", is_flag=True,
              help="A local Redis Cluster (3 masters + 3 replicas on "
              "$STREAMER_REDIS_CLUSTER_PORT and the next five ports) instead of one "
              "redis-server [default: $STREAMER_REDIS_CLUSTER].")
def up(kafka_brokers: int | None, redis_cluster: bool) -> None:
    """Start Redis and Kafka (no-op for those already running); print where they listen."""
    settings = get_settings()
    # The flags as if set in the environment, so the defaults that follow from them
    # (bootstrap list, replication, REDIS_URL, WAIT) are those printed below.
    chosen = {k: v for k, v in (("kafka_brokers", kafka_brokers),
                                ("redis_cluster", redis_cluster or None)) if v is not None}
    settings = settings.replace(**chosen) if chosen else settings
    try:
        kafka = stack_kafka(settings, kafka_brokers)
        redis = stack_redis(settings)
        redis_url, redis_s = _timed(
            "starting a Redis Cluster (3 masters + 3 replicas)..."
            if isinstance(redis, LocalRedisCluster) else "starting redis-server...",
            lambda: _start_redis(redis))
        what = (f", a {kafka.size}-node cluster" if isinstance(kafka, LocalKafkaCluster)
                else "")
        bootstrap, kafka_s = _timed(
            f"starting Kafka {settings.stack.kafka_version}{what} (the first run fetches "
            "jars)...", kafka.start)
    except StackError as exc:
        _fail(exc)
    if isinstance(redis, LocalRedisCluster):
        _console.print(f"[green]redis cluster[/] listening on [bold]{redis_url}[/] and the "
                       f"next {len(redis.ports) - 1} ports ({redis_s:.1f}s)")
    else:
        _console.print(f"[green]redis[/] listening on [bold]{redis_url}[/] ({redis_s:.1f}s)")
    _console.print(f"[green]kafka[/] listening on [bold]{bootstrap}[/] ({kafka_s:.1f}s)")
    if isinstance(kafka, LocalKafkaCluster) or isinstance(redis, LocalRedisCluster):
        _print_client_env(settings, kafka, redis)
    _console.print(f"data: {settings.paths.data_dir}   stop with: streamer stack down",
                   highlight=False)
    if settings.kafka.security_protocol == "SASL_SSL" or redis_url.startswith("rediss://"):
        ca = settings.paths.data_dir / "tls" / "ca.pem"
        _console.print(f"TLS: clients trust {ca} (STREAMER_KAFKA_SSL_CAFILE, "
                       "STREAMER_REDIS_TLS_CA_FILE)", highlight=False)


def _start_redis(redis: LocalRedis | LocalRedisCluster) -> str:
    """Start it; the URL a client uses (a cluster's first node: it finds the others)."""
    redis.start()
    return redis.url


def _print_client_env(settings: Settings, kafka: LocalKafka | LocalKafkaCluster,
                      redis: LocalRedis | LocalRedisCluster) -> None:
    """What the worker and the other commands need to use the clusters as they are meant
    to: the one or two choices, and what follows from them (settings.derived_defaults)."""
    choose: dict[str, str] = {}
    follows: dict[str, str] = {}
    if isinstance(kafka, LocalKafkaCluster):
        layout = kafka.nodes[0].layout
        _console.print(
            f"{kafka.size} voters and brokers; topics default to replication factor "
            f"{layout.replication_factor}, min.insync.replicas {layout.min_insync_replicas}.",
            highlight=False)
        env = kafka.client_env()
        choose["STREAMER_KAFKA_BROKERS"] = env.pop("STREAMER_KAFKA_BROKERS")
        follows.update(env)
    if isinstance(redis, LocalRedisCluster):
        _console.print(f"Redis Cluster: {len(redis.ports) // 2} masters, each with a replica; "
                       "a batch's writes wait for the replica (WAIT 1) before its commit.",
                       highlight=False)
        choose["STREAMER_REDIS_CLUSTER"] = "true"
        follows.update({"REDIS_URL": redis.url,
                        "STREAMER_REDIS_WAIT_REPLICAS": str(settings.redis.wait_replicas)})
    _console.print("For the worker and the other commands (or in .env):", highlight=False)
    for line in ("  export " + " ".join(f"{k}={v}" for k, v in choose.items()),
                 "  which sets as defaults: " + " ".join(f"{k}={v}" for k, v in follows.items())):
        _console.print(line, highlight=False, soft_wrap=True)


@stack.command("down")
def down() -> None:
    """Stop Kafka and Redis, one node or every node of a cluster (data is kept)."""
    settings = get_settings()
    errors: list[StackError] = []
    for name, server in _servers(settings):
        was_running = server.is_running()
        try:
            server.stop()
        except StackError as exc:
            errors.append(exc)
            continue
        _console.print(f"{name}: {'stopped' if was_running else 'was not running'}")
    if errors:
        _fail(errors[0])


_Server = LocalRedis | LocalRedisCluster | LocalKafka | LocalKafkaCluster


def _servers(settings: Settings) -> list[tuple[str, _Server]]:
    servers: list[tuple[str, _Server]] = [("redis", LocalRedis(settings))]
    # Clusters made earlier, whatever STREAMER_REDIS_CLUSTER / STREAMER_KAFKA_BROKERS say now.
    redis_cluster = LocalRedisCluster(settings)
    if redis_cluster.exists():
        servers.append((f"redis cluster ({len(redis_cluster.ports)} nodes)", redis_cluster))
    servers.append(("kafka", LocalKafka(settings)))
    kafka_cluster = LocalKafkaCluster(settings)
    if kafka_cluster.exists():
        servers.append((f"kafka ({kafka_cluster.size}-node cluster)", kafka_cluster))
    return servers


@stack.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Show whether the local servers run: pids, roles, addresses, memory, data dirs."""
    try:
        current = stack_status(get_settings())
    except StackError as exc:
        _fail(exc)
    if as_json:
        click.echo(current.model_dump_json(indent=2))
    else:
        _console.print(_status_table(current))


@stack.command("fetch")
def fetch() -> None:
    """Download the Kafka jars into the cache (CI warm-up); needs mvn and Java >= 17."""
    settings = get_settings()
    try:
        with _console.status(f"fetching Kafka {settings.stack.kafka_version} jars with mvn..."):
            libs = LocalKafka(settings).fetch_jars()
    except StackError as exc:
        _fail(exc)
    _console.print(f"jars in {libs}", highlight=False)
