"""Real Kafka and Redis for the tests, from the first source that works:

1. servers named by ``KAFKA_BOOTSTRAP`` / ``REDIS_URL`` in the environment;
2. testcontainers, when a Docker engine answers;
3. local processes (``streamer.devstack``) on free ports with a fresh temp data dir, so a
   developer's own running stack is never touched; stopped at session end.

``STREAMER_TEST_STACK=local|docker`` skips the probing. When a server cannot be had,
tests fail under ``CI=true`` and skip (with the reason) elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

import pytest

from streamer.devstack import LocalKafka, LocalKafkaCluster, LocalRedis, StackError
from streamer.devstack._proc import port_in_use
from streamer.devstack.redis_cluster import LocalRedisCluster
from streamer.settings import Settings

_Server = TypeVar("_Server", LocalKafka, LocalRedis, LocalKafkaCluster, LocalRedisCluster)

CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
# Overridable so CI can test against the broker version it ships with.
KAFKA_IMAGE = os.environ.get("STREAMER_TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:7.9.0")
REDIS_IMAGE = os.environ.get("STREAMER_TEST_REDIS_IMAGE", "redis:7")

Source = Literal["env", "docker", "local"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Skip locally, fail in CI: a CI run must never go green by skipping its servers."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all sockets held until all are picked)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def local_settings(data_dir: Path) -> Settings:
    """Settings for a private local stack: own data dir and free ports, shared jar cache."""
    kafka_port, controller_port, redis_port = free_ports(3)
    return Settings(
        _env_file=None,  # a developer's .env must not leak in
        data_dir=data_dir,
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        redis_port=redis_port,
        redis_password=None,
    )


def free_port_block(count: int, attempts: int = 200) -> int:
    """The first of ``count`` consecutive free ports (a Kafka cluster's nodes listen on
    base + 2i and base + 1 + 2i)."""
    for _ in range(attempts):
        base = free_ports(1)[0]
        if base + count < 65_536 and not any(port_in_use(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def cluster_settings(data_dir: Path, brokers: int = 3) -> Settings:
    """Settings for a private local Kafka cluster: own data dir and ports, shared jars;
    STREAMER_STACK_START_TIMEOUT_S may stretch its start-up on a loaded machine."""
    base = free_port_block(2 * brokers)
    return Settings(
        _env_file=None,
        data_dir=data_dir,
        kafka_port=base,
        kafka_controller_port=base + 1,
        kafka_brokers=brokers,
        stack_start_timeout_s=float(os.environ.get("STREAMER_STACK_START_TIMEOUT_S", 240)),
    )


def docker_engine_answers(timeout_s: float = 2.0) -> bool:
    try:
        import docker

        client = docker.from_env(timeout=int(max(timeout_s, 1)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no daemon: all mean "no Docker"
        return False


def _choose(env_var: str) -> Source:
    if os.environ.get(env_var):
        return "env"
    forced = os.environ.get("STREAMER_TEST_STACK", "auto").strip().lower()
    if forced in ("local", "docker"):
        return "docker" if forced == "docker" else "local"
    return "docker" if docker_engine_answers() else "local"


@dataclass(frozen=True)
class KafkaServer:
    bootstrap: str
    source: Source
    local: LocalKafka | None  # set only when the tests started a local broker


@pytest.fixture(scope="session")
def local_stack_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the session's private local stack (used only on the local path)."""
    return local_settings(tmp_path_factory.mktemp("stack"))


@pytest.fixture(scope="session")
def kafka_server(request: pytest.FixtureRequest) -> Iterator[KafkaServer]:
    source = _choose("KAFKA_BOOTSTRAP")
    if source == "env":
        yield KafkaServer(os.environ["KAFKA_BOOTSTRAP"], source, None)
    elif source == "docker":
        yield from _docker_kafka()
    else:
        settings: Settings = request.getfixturevalue("local_stack_settings")
        with running(LocalKafka(settings), "local Kafka") as kafka:
            yield KafkaServer(kafka.bootstrap, source, kafka)


def _docker_kafka() -> Iterator[KafkaServer]:
    from testcontainers.kafka import KafkaContainer

    try:  # the constructor already talks to the Docker engine
        container: Any = KafkaContainer(KAFKA_IMAGE).with_kraft()
        container.start()
    except Exception as exc:
        unavailable(f"Kafka container {KAFKA_IMAGE} could not start: {exc}")
    try:
        yield KafkaServer(container.get_bootstrap_server(), "docker", None)
    finally:
        container.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_server: KafkaServer) -> str:
    """host:port of a real Kafka broker for the whole session."""
    return kafka_server.bootstrap


@pytest.fixture(scope="session")
def local_kafka(kafka_server: KafkaServer) -> LocalKafka | None:
    """The LocalKafka the session started, or None when Kafka came from env or Docker."""
    return kafka_server.local


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafkaCluster]:
    """A private 3-node local Kafka cluster (combined broker+controller nodes, RF 3, min
    ISR 2) for the whole session; always local processes, whose nodes the tests may
    kill, pause and restart. ``cluster.client_settings()`` points clients at it."""
    cluster = LocalKafkaCluster(cluster_settings(tmp_path_factory.mktemp("kafka-cluster")))
    with running(cluster, "local Kafka cluster") as started:
        yield started


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """redis:// URL of a real Redis for the whole session (database 0, no password)."""
    source = _choose("REDIS_URL")
    if source == "env":
        yield os.environ["REDIS_URL"]
    elif source == "docker":
        from testcontainers.redis import RedisContainer

        try:
            container: Any = RedisContainer(REDIS_IMAGE)
            container.start()
        except Exception as exc:
            unavailable(f"Redis container {REDIS_IMAGE} could not start: {exc}")
        try:
            host = container.get_container_host_ip()
            yield f"redis://{host}:{container.get_exposed_port(6379)}/0"
        finally:
            container.stop()
    else:
        settings: Settings = request.getfixturevalue("local_stack_settings")
        with running(LocalRedis(settings), "local redis-server") as server:
            yield server.url


@contextlib.contextmanager
def running(server: _Server, what: str) -> Iterator[_Server]:
    """``server`` (a local Kafka or Redis, single or cluster) started, and stopped afterwards; skips
    (fails in CI) with ``what`` in the reason when it cannot start."""
    try:
        server.start()
    except StackError as exc:
        server.stop()
        unavailable(f"{what} could not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


def kafka_tools(settings: Settings | None = None) -> LocalKafka:
    """A LocalKafka used only for its jars (run_tool); fetches them on first use."""
    tools = LocalKafka(settings or Settings(_env_file=None))
    try:
        tools.fetch_jars()
    except StackError as exc:
        unavailable(f"Kafka tool jars unavailable: {exc}")
    return tools


def console_consume(
    kafka_bootstrap: str,
    topic: str,
    max_messages: int,
    timeout_s: float = 30.0,
    extra_props: Mapping[str, str] | None = None,
    *,
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed",
    from_beginning: bool = True,
    formatter_props: Mapping[str, str] | None = None,
) -> list[str]:
    """Read up to ``max_messages`` values from ``topic`` with Kafka's own ConsoleConsumer.

    An independent reader: what it sees was really written the Kafka way (transactions
    included, since it reads ``read_committed`` by default). ``extra_props`` become
    ``--consumer-property k=v``; ``formatter_props`` (e.g. ``print.key=true``) become
    ``--property``. Stops after ``timeout_s`` without a new message.
    """
    args = [
        "--bootstrap-server", kafka_bootstrap,
        "--topic", topic,
        "--max-messages", str(max_messages),
        "--timeout-ms", str(int(timeout_s * 1000)),
        "--isolation-level", isolation_level,
    ]  # fmt: skip
    if from_beginning:
        args.append("--from-beginning")
    for key, value in (extra_props or {}).items():
        args += ["--consumer-property", f"{key}={value}"]
    for key, value in (formatter_props or {}).items():
        # Kafka 4.1's ConsoleConsumer names the formatter's properties ``--property``.
        args += ["--property", f"{key}={value}"]
    # JVM start + group join come on top of the idle timeout.
    proc = kafka_tools().run_tool(CONSOLE_CONSUMER, args, timeout=timeout_s + 60)
    if proc.returncode != 0:
        raise AssertionError(
            f"ConsoleConsumer exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
            f"stderr:\n{proc.stderr}"
        )
    return proc.stdout.splitlines()
