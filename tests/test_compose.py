"""docker-compose.yml, read as a deployer's tools read it: reachable from the host at the
addresses the README and the CLI's defaults use, a required web token, the train extra,
the labelled data required and mounted, and nothing docker-compose 1.29 refuses.
``docker compose config`` checks it too where the Compose plugin is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers import unavailable

from streamer.settings import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
REQUIRED = re.compile(r"^\$\{(?P<var>[A-Z_]+):\?(?P<message>.+)\}$")
DEFAULTED = re.compile(r"\$\{(?P<var>[A-Z_]+):-(?P<default>[^}]*)\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def defaults(text: str) -> str:
    """``text`` with each ``${VAR:-default}`` replaced by its default."""
    return DEFAULTED.sub(lambda m: m["default"], text)


def env_of(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in service["environment"].items()}


def published(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host address, host port or range, container port) of each published port."""
    out = []
    for spec in service.get("ports", []):
        host, port, target = defaults(str(spec)).rsplit(":", 2)
        out.append((host, port, target))
    return out


def listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` -> {NAME: host:port}."""
    return dict(item.split("://", 1) for item in defaults(value).split(","))


def test_no_top_level_name_which_docker_compose_1_29_refuses(compose: dict[str, Any]) -> None:
    assert "name" not in compose
    assert "version" not in compose  # the Compose Specification: no version key either


def test_kafka_is_reachable_from_the_host_at_the_clis_default_bootstrap(
    compose: dict[str, Any],
) -> None:
    kafka = compose["services"]["kafka"]
    env = env_of(kafka)
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    bound = listeners(env["KAFKA_LISTENERS"])
    host_default = Settings(_env_file=None).kafka.bootstrap  # 127.0.0.1:9092, the README's
    [outside] = [name for name, address in advertised.items() if address == host_default]
    port = bound[outside].rsplit(":", 1)[1]
    assert (host_default.split(":")[0], host_default.split(":")[1], port) in published(kafka)
    # Every listener has a protocol, and brokers talk over one that is advertised.
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(bound) <= set(protocols)
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised


def test_containers_reach_kafka_through_the_listener_it_advertises_inside(
    compose: dict[str, Any],
) -> None:
    advertised = listeners(env_of(compose["services"]["kafka"])["KAFKA_ADVERTISED_LISTENERS"])
    inside = {address for address in advertised.values() if address.startswith("kafka:")}
    for name in ("worker", "worker-gpu", "demo"):
        assert env_of(compose["services"][name])["KAFKA_BOOTSTRAP"] in inside, name


def test_redis_and_the_dashboard_are_published_on_loopback_at_the_default_ports(
    compose: dict[str, Any],
) -> None:
    settings = Settings(_env_file=None)
    redis_port = settings.redis.url.rsplit(":", 1)[1].split("/")[0]
    assert ("127.0.0.1", redis_port, redis_port) in published(compose["services"]["redis"])
    [(host, ports, target)] = published(compose["services"]["worker"])
    assert host == "127.0.0.1" and target == str(settings.web.port)
    assert ports.split("-")[0] == str(settings.web.port)  # the first worker's


@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_the_web_token_is_required_not_empty_by_default(compose: dict[str, Any],
                                                        name: str) -> None:
    env = env_of(compose["services"][name])
    assert env["STREAMER_WEB_HOST"] == "0.0.0.0"  # reachable: a worker needs the token
    required = REQUIRED.match(env["STREAMER_WEB_TOKEN"])
    assert required and required["var"] == "STREAMER_WEB_TOKEN"


@pytest.mark.parametrize(("name", "extras"), [("worker", {"train"}),
                                              ("worker-gpu", {"train", "gpu"})])
def test_workers_are_built_with_the_train_extra(compose: dict[str, Any], name: str,
                                                extras: set[str]) -> None:
    args = compose["services"][name]["build"]["args"]
    assert set(args["EXTRAS"].split(",")) == extras
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "ARG EXTRAS" in dockerfile and "[$EXTRAS]" in dockerfile


@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_the_labelled_data_is_a_required_mount_where_the_worker_reads_it(
    compose: dict[str, Any], name: str,
) -> None:
    service = compose["services"][name]
    inside = env_of(service)["STREAMER_LABELLED_DATA_DIR"]
    [source] = [v.rsplit(":", 2)[0] for v in service["volumes"]
                if v.rsplit(":", 2)[1] == inside]
    required = REQUIRED.match(source)
    assert required, source  # not a default path that Docker would create empty
    assert "../shared/data" not in source.split(":?")[0]


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True,
                               check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_accepts_it_and_demands_the_token(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        unavailable("neither the Docker Compose plugin nor docker-compose is installed: "
                    "apt-get install docker-compose (scripts/setup.sh does)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("STREAMER_WEB_TOKEN", "LABELLED_DATA_DIR")}
    env["COMPOSE_PROJECT_NAME"] = "streamer-test"
    base = [*command, "--project-directory", str(tmp_path), "-f", str(COMPOSE), "config", "-q"]
    ok = subprocess.run(base, env={**env, "STREAMER_WEB_TOKEN": "t" * 32,
                                   "LABELLED_DATA_DIR": str(tmp_path)},
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    refused = subprocess.run(base, env={**env, "LABELLED_DATA_DIR": str(tmp_path)},
                             capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "STREAMER_WEB_TOKEN" in refused.stderr


# --- profile `cluster`: 3 Kafka nodes, a Redis Cluster, workers on both ----------------

CLUSTER_KAFKA = ("kafka-1", "kafka-2", "kafka-3")
CLUSTER_CLIENTS = ("worker-cluster", "demo-cluster")


def _client_settings(service: dict[str, Any]) -> Settings:
    """The settings a container of ``service`` reads from the environment compose gives it."""
    return Settings(_env_file=None).with_env(
        {k: defaults(v) for k, v in env_of(service).items()})


def test_the_default_deployment_has_no_cluster_service(compose: dict[str, Any]) -> None:
    default = {n for n, s in compose["services"].items() if "profiles" not in s}
    assert default == {"kafka", "redis", "worker"}
    clustered = {n for n, s in compose["services"].items() if "cluster" in s.get("profiles", [])}
    assert set(CLUSTER_KAFKA) | set(CLUSTER_CLIENTS) | {"redis-cluster-create"} <= clustered


def test_the_cluster_profile_has_three_kraft_voters_with_rf_3_and_min_isr_2(
    compose: dict[str, Any],
) -> None:
    ids = []
    for name in CLUSTER_KAFKA:
        env = env_of(compose["services"][name])
        ids.append(env["KAFKA_NODE_ID"])
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == ",".join(
            f"{i}@kafka-{i}:9093" for i in (1, 2, 3))
        for key in ("KAFKA_DEFAULT_REPLICATION_FACTOR", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
            assert env[key] == "3", key
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert listeners(env["KAFKA_ADVERTISED_LISTENERS"])["INTERNAL"] == f"{name}:19092"
    assert ids == ["1", "2", "3"]
    # Published where `streamer stack up --kafka-brokers 3` listens, so a host with
    # STREAMER_KAFKA_BROKERS=3 bootstraps from all three.
    host = Settings(_env_file=None, kafka_brokers=3).kafka.bootstrap.split(",")
    for name, address in zip(CLUSTER_KAFKA, host, strict=True):
        [(ip, port, _)] = published(compose["services"][name])
        assert f"{ip}:{port}" == address


def test_the_redis_cluster_is_created_once_from_six_nodes(compose: dict[str, Any]) -> None:
    nodes = [n for n in compose["services"] if n.startswith("redis-node-")]
    assert len(nodes) == 6
    for name in nodes:
        command = compose["services"][name]["command"]
        assert command[command.index("--cluster-enabled") + 1] == "yes"
        assert command[command.index("--appendonly") + 1] == "yes"
    create = compose["services"]["redis-cluster-create"]
    assert set(create["depends_on"]) == set(nodes)
    script = create["command"][0]
    assert "--cluster create" in script and "--cluster-replicas 1" in script
    assert "cluster_known_nodes:6" in script  # a formed cluster is left as it is


@pytest.mark.parametrize("name", CLUSTER_CLIENTS)
def test_cluster_clients_use_every_broker_and_the_redis_cluster(compose: dict[str, Any],
                                                               name: str) -> None:
    service = compose["services"][name]
    s = _client_settings(service)
    inside = {listeners(env_of(compose["services"][k])["KAFKA_ADVERTISED_LISTENERS"])["INTERNAL"]
              for k in CLUSTER_KAFKA}
    assert set(s.kafka.bootstrap.split(",")) == inside
    assert s.redis.cluster and s.redis.url.startswith("redis://redis-node-")
    assert (s.topics.replication_factor, s.topics.min_insync_replicas) == (3, 2)
    assert s.redis.wait_replicas == 1  # acknowledged means on a replica
    assert service["depends_on"]["redis-cluster-create"] == {
        "condition": "service_completed_successfully"}


def test_docker_compose_config_accepts_the_cluster_profile(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        unavailable("neither the Docker Compose plugin nor docker-compose is installed: "
                    "apt-get install docker-compose (scripts/setup.sh does)")
    env = {**os.environ, "COMPOSE_PROJECT_NAME": "streamer-test",
           "STREAMER_WEB_TOKEN": "t" * 32, "LABELLED_DATA_DIR": str(tmp_path)}
    base = [*command, "--project-directory", str(tmp_path), "-f", str(COMPOSE)]
    proc = subprocess.run([*base, "--profile", "cluster", "config"], env=env,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    rendered: dict[str, Any] = yaml.safe_load(proc.stdout)
    for name in CLUSTER_CLIENTS:  # what the containers really get, anchors merged
        s = _client_settings(rendered["services"][name])
        assert s.redis.cluster and s.kafka.bootstrap.count(",") == 2, name
        assert (s.topics.replication_factor, s.topics.min_insync_replicas) == (3, 2), name
    assert env_of(rendered["services"]["worker-cluster"])["STREAMER_WEB_TOKEN"] == "t" * 32
    services = subprocess.run([*base, "--profile", "cluster", "config", "--services"], env=env,
                              capture_output=True, text=True, check=False).stdout.split()
    assert {"kafka-1", "redis-node-6", "redis-cluster-create", "worker-cluster"} <= set(services)
