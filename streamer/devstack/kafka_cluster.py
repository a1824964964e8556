"""A local Kafka cluster (KRaft) from the same jars as the single node, no Docker.

N combined broker+controller nodes (``process.roles=broker,controller``), each a voter of
one dynamic controller quorum, each a ``LocalKafka`` with its own folder, ports and log.
Combined nodes, not separate controllers: three JVMs instead of six, which is what a
2-core CI machine can hold (docs/OPERATIONS.md has their RSS).

Layout:
  <data_dir>/kafka-cluster/cluster.json     cluster id, version, the voters (ids, ports,
                                            metadata directory ids): fixed at format time
  <data_dir>/kafka-cluster/node-<id>/       one node: server.properties, data/, logs/,
                                            kafka.pid (the single node's layout)

Node i (from 0; node id i + 1) listens on ``STREAMER_KAFKA_PORT`` + 2i for clients and on
``STREAMER_KAFKA_CONTROLLER_PORT`` + 2i for the quorum. The brokers' defaults make every
topic, the internal ones included, replication factor 3 with ``min.insync.replicas=2``
and no unclean leader election: an ``acks=all`` write is on two replicas before it is
acknowledged, and only an in-sync replica becomes leader.

Each node can be stopped, SIGKILLed, paused (SIGSTOP) and started again on its storage
(``cluster.node(2).kill()``) for the fault tests; ``partitions`` and ``quorum`` say who
leads each partition and which voter is the active controller.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pydantic import BaseModel

from streamer.devstack._proc import StackError, file_lock
from streamer.devstack.kafka import (
    KafkaNodeLayout,
    KafkaStatus,
    LocalKafka,
    Voter,
    new_cluster_id,
)
from streamer.kafka.security import KafkaSecurityError, client_options
from streamer.settings import KAFKA_NODE_PORT_STEP, Settings

_T = TypeVar("_T")
_QUORUM_TOOL = "org.apache.kafka.tools.MetadataQuorumCommand"
_PORT_STEP = KAFKA_NODE_PORT_STEP  # node i: client port base + 2i, controller port base + 2i


class _ClusterState(BaseModel):
    """What the nodes' storage was formatted with; kept across restarts."""

    cluster_id: str
    version: str
    voters: list[Voter]


class PartitionState(BaseModel):
    """One partition as the brokers' metadata has it."""

    topic: str
    partition: int
    leader: int | None  # None: no leader (offline)
    replicas: list[int]
    isr: list[int]


class QuorumStatus(BaseModel):
    """The controller quorum, from ``kafka-metadata-quorum describe --status``."""

    leader_id: int  # the active controller
    leader_epoch: int
    high_watermark: int
    voters: list[int]
    observers: list[int]


def _run(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    # A private thread + loop: these are sync APIs that tests may call from inside a
    # running event loop, where asyncio.run fails.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def parse_quorum_status(text: str) -> QuorumStatus:
    """The fields of ``describe --status`` output ("LeaderId:  2", "CurrentVoters: [...]")."""

    def field(name: str) -> str:
        m = re.search(rf"^{name}:\s*(.+)$", text, re.MULTILINE)
        if m is None:
            raise StackError(f"kafka-metadata-quorum printed no {name}:\n{text[-2000:]}")
        return m.group(1).strip()

    def ids(raw: str) -> list[int]:
        # Kafka 4.x prints JSON objects ({"id": 1, ...}); older ones a list of ids.
        parsed = json.loads(raw)
        return sorted(int(v["id"]) if isinstance(v, dict) else int(v) for v in parsed)

    return QuorumStatus(
        leader_id=int(field("LeaderId")), leader_epoch=int(field("LeaderEpoch")),
        high_watermark=int(field("HighWatermark")),
        voters=ids(field("CurrentVoters")), observers=ids(field("CurrentObservers")))


class LocalKafkaCluster:
    """N local KRaft nodes on 127.0.0.1, each broker and controller quorum voter."""

    def __init__(self, settings: Settings, brokers: int | None = None) -> None:
        self.settings = settings
        self.dir = settings.paths.data_dir / "kafka-cluster"
        self.state_file = self.dir / "cluster.json"
        state = self._load_state()
        # An existing cluster keeps the shape it was formatted with; `brokers` (default:
        # STREAMER_KAFKA_BROKERS, else the size on disk) shapes a new one, and start()
        # refuses a size the storage does not hold.
        default = settings.stack.kafka_brokers
        if default == 1 and state is not None:
            default = len(state.voters)
        self.wanted = brokers or default
        self._voters = state.voters if state is not None else self._planned_voters()
        self.nodes = [LocalKafka(settings, self._layout(v, state)) for v in self._voters]

    # --- shape -----------------------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.nodes)

    @property
    def bootstrap(self) -> str:
        """Every node's client address: clients reach the cluster while any one is up."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def controllers(self) -> str:
        return ",".join(f"127.0.0.1:{v.controller_port}" for v in self._voters)

    def client_env(self) -> dict[str, str]:
        """The settings a worker and the other commands need to use this cluster as it is
        meant to be used: every node to bootstrap from, and the topics' replication."""
        layout = self.nodes[0].layout
        return {"KAFKA_BOOTSTRAP": self.bootstrap, "STREAMER_KAFKA_BROKERS": str(self.size),
                "STREAMER_TOPIC_REPLICATION_FACTOR": str(layout.replication_factor),
                "STREAMER_TOPIC_MIN_INSYNC_REPLICAS": str(layout.min_insync_replicas)}

    def client_settings(self) -> Settings:
        """These settings with ``client_env`` applied."""
        return self.settings.with_env(self.client_env())

    def exists(self) -> bool:
        """Formatted at least once (a state file on disk)."""
        return self._load_state() is not None

    def node(self, node_id: int) -> LocalKafka:
        """The node with this Kafka node id (1..N), as partition leaders are named."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise StackError(f"no node {node_id} in a {self.size}-node cluster")

    def _planned_voters(self) -> list[Voter]:
        s = self.settings.stack
        return [Voter(node_id=i + 1, controller_port=s.kafka_controller_port + _PORT_STEP * i,
                      directory_id=new_cluster_id())  # a Kafka Uuid, as cluster ids are
                for i in range(self.wanted)]

    def _layout(self, voter: Voter, state: _ClusterState | None) -> KafkaNodeLayout:
        index = voter.node_id - 1
        return KafkaNodeLayout(
            node_id=voter.node_id,
            port=self.settings.stack.kafka_port + _PORT_STEP * index,
            controller_port=voter.controller_port,
            dir=self.dir / f"node-{voter.node_id}",
            voters=self._voters,
            cluster_id=state.cluster_id if state is not None else None,
        )

    def _load_state(self) -> _ClusterState | None:
        try:
            return _ClusterState.model_validate_json(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def _ensure_state(self) -> None:
        """Fix the cluster id and voters before any node formats (they must all agree);
        refuse a request for another shape than the storage holds."""
        state = self._load_state()
        if state is not None:
            want_ports = [self.settings.stack.kafka_controller_port + _PORT_STEP * i
                          for i in range(self.wanted)]
            have_ports = [v.controller_port for v in state.voters]
            if have_ports != want_ports:
                raise StackError(
                    f"{self.dir} holds a {len(state.voters)}-node cluster with controller "
                    f"ports {have_ports}, not {self.wanted} nodes from "
                    f"{self.settings.stack.kafka_controller_port}; set STREAMER_KAFKA_BROKERS"
                    f"={len(state.voters)} and STREAMER_KAFKA_CONTROLLER_PORT="
                    f"{have_ports[0]}, or delete {self.dir} (loses topics).")
            return
        if any((node.log_dirs / "meta.properties").is_file() for node in self.nodes):
            raise StackError(f"{self.dir} holds Kafka data but {self.state_file} is missing; "
                             f"delete {self.dir} to start over.")
        state = _ClusterState(cluster_id=new_cluster_id(),
                              version=self.settings.stack.kafka_version, voters=self._voters)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(state.model_dump_json(indent=2), encoding="utf-8")
        self.nodes = [LocalKafka(self.settings, self._layout(v, state)) for v in self._voters]

    # --- lifecycle -------------------------------------------------------------------

    def is_running(self) -> bool:
        """Any node runs."""
        return any(node.is_running() for node in self.nodes)

    def start(self) -> str:
        """Start every node that is not running (all launched before any is awaited: none
        serves until a majority of voters has elected a controller); the bootstrap list
        once each answers. A node that fails to start is stopped again; others keep on."""
        if self.wanted < 2:
            raise StackError("a local Kafka cluster needs at least 2 nodes "
                             "(STREAMER_KAFKA_BROKERS / --kafka-brokers)")
        if LocalKafka(self.settings).is_running():
            raise StackError("the single-node local Kafka runs on these ports; stop it first "
                             "(`streamer stack down`), its data stays")
        timeout = self.settings.stack.stack_start_timeout_s
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.dir / ".lock"):
            self._ensure_state()
            self.nodes[0].fetch_jars()  # once, before the nodes format in parallel
            with concurrent.futures.ThreadPoolExecutor(max_workers=self.size) as pool:
                launched = list(pool.map(lambda node: node.launch(), self.nodes))
            deadline = time.monotonic() + timeout
            try:
                for node in self.nodes:
                    node.wait_ready(max(1.0, deadline - time.monotonic()))
            except StackError:
                for node, new in zip(self.nodes, launched, strict=True):
                    if new:
                        node.stop()
                raise
        return self.bootstrap

    def stop(self) -> None:
        """Stop every node (controlled shutdowns, in parallel: one by one, the last ones
        would wait for a quorum that is already gone)."""
        if not self.exists():
            return  # never formatted: nothing can run (and no folders to make)
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, self.size)) as pool:
            errors = [f.exception() for f in [pool.submit(n.stop) for n in self.nodes]]
        for error in errors:
            if error is not None:
                raise error

    def status(self) -> KafkaStatus:
        state = self._load_state()
        nodes = [node.node_status() for node in self.nodes]
        return KafkaStatus(
            running=bool(nodes) and all(n.running for n in nodes),
            pid=None,
            bootstrap=self.bootstrap,
            data_dir=self.dir,
            version=state.version if state is not None else self.settings.stack.kafka_version,
            brokers=self.size,
            nodes=nodes,
        )

    # --- who leads -------------------------------------------------------------------

    def partitions(self, topic: str, timeout_s: float = 30.0) -> list[PartitionState]:
        """Leader, replicas and ISR of each partition of ``topic``, from the live brokers'
        metadata (e.g. to find the node that leads the busiest partitions).

        Asks again (a new client) while a request fails: with a node down, the client may
        pick that node first. StackError after ``timeout_s``."""
        from aiokafka.admin import AIOKafkaAdminClient

        try:
            security = client_options(self.settings.kafka)
        except KafkaSecurityError as exc:
            raise StackError(str(exc)) from exc

        async def describe_once(request_s: float) -> list[Any]:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap,
                                        request_timeout_ms=int(request_s * 1000), **security)
            try:
                await asyncio.wait_for(admin.start(), request_s)
                return list(await asyncio.wait_for(admin.describe_topics([topic]), request_s))
            finally:
                await admin.close()

        async def describe() -> list[PartitionState]:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    described = await describe_once(min(5.0, timeout_s))
                    break
                except Exception as exc:  # a dead or paused node answered first
                    if time.monotonic() > deadline:
                        raise StackError(f"no broker described {topic}: {exc!r}") from exc
                    await asyncio.sleep(0.5)
            return sorted((PartitionState(
                topic=topic, partition=p["partition"],
                leader=p["leader"] if p["leader"] >= 0 else None,
                replicas=sorted(p["replicas"]), isr=sorted(p["isr"]))
                for entry in described if not entry.get("error_code")
                for p in entry.get("partitions", [])), key=lambda p: p.partition)

        return _run(describe)

    def partition(self, topic: str, partition: int = 0, timeout_s: float = 30.0
                  ) -> PartitionState:
        """One partition of ``partitions``; StackError when the metadata has none."""
        for state in self.partitions(topic, timeout_s):
            if state.partition == partition:
                return state
        raise StackError(f"no partition {topic}-{partition} in the cluster's metadata")

    def wait_isr(self, topic: str, partition: int, size: int, timeout_s: float) -> PartitionState:
        """Until ``size`` replicas of the partition are in sync (a restarted node caught
        up); StackError after ``timeout_s``."""
        return self._wait(topic, partition, lambda p: len(p.isr) >= size,
                          f"{size} in-sync replicas", timeout_s)

    def wait_leader(self, topic: str, partition: int = 0, *, other_than: int | None = None,
                    timeout_s: float = 90.0) -> PartitionState:
        """Until the partition has a leader (other than ``other_than``: after that node was
        killed, the controller must first notice it, within broker.session.timeout.ms)."""
        return self._wait(topic, partition,
                          lambda p: p.leader is not None and p.leader != other_than,
                          "a new leader" if other_than is not None else "a leader", timeout_s)

    def _wait(self, topic: str, partition: int, done: Callable[[PartitionState], bool],
              what: str, timeout_s: float) -> PartitionState:
        deadline = time.monotonic() + timeout_s
        last: PartitionState | str = "no answer"
        while time.monotonic() < deadline:
            try:
                last = self.partition(topic, partition, timeout_s=max(1.0, min(
                    30.0, deadline - time.monotonic())))
                if done(last):
                    return last
            except StackError as exc:  # no broker answered in time: not yet
                last = str(exc)
            time.sleep(0.5)
        raise StackError(f"{topic}-{partition} did not get {what} within {timeout_s:.0f}s "
                         f"(last: {last})")

    def quorum(self, timeout_s: float = 60.0) -> QuorumStatus:
        """The controller quorum as the voters report it (Kafka's kafka-metadata-quorum,
        through the controller listeners, which are PLAINTEXT in every mode)."""
        proc = self.nodes[0].run_tool(
            _QUORUM_TOOL, ["--bootstrap-controller", self.controllers, "describe", "--status"],
            timeout=timeout_s)
        if proc.returncode != 0:
            raise StackError(f"kafka-metadata-quorum failed (exit {proc.returncode}):\n"
                             f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        return parse_quorum_status(proc.stdout)

    def active_controller(self) -> LocalKafka:
        """The node whose controller leads the quorum."""
        return self.node(self.quorum().leader_id)

