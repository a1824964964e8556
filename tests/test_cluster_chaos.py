"""Faults against the pipeline on clusters: a 3-node KRaft Kafka cluster (replication
factor 3, min.insync.replicas 2, acks=all) and a Redis Cluster (3 masters + 3 replicas,
the worker WAITing for one replica before it commits), after the pattern of Kafka's own
``transactions_test`` and Streams EOS system tests: a real worker scoring with the real
model bundle under a steady seeded stream, one node hard-killed, paused or bounced
mid-stream, and then a ``read_committed`` verifier that checks input ids = output ids
with no duplicates, and every Redis count against what was sent.

Each test adds a row to the fault table (tests/test_chaos.py's columns, printed by
conftest at the end and written to test-output/chaos.md); docs/RELIABILITY.md's cluster
section holds a run. The clusters are the session's (tests/servers.py,
tests/redis_cluster_server.py); each test puts them back whole before the next.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The fault table's own helpers, so both tables count and print alike.
from chaos_support import assert_clean, record, restarts, stream, wait_until
from harness import (
    BackgroundProducer,
    Namespace,
    Outcome,
    WorkerProcess,
    _accounts,
    consumed_total,
    is_valid,
    measure,
    wait_committed,
    wait_consumed,
)
from redis_cluster_server import restore

from streamer.devstack import LocalKafka, LocalKafkaCluster
from streamer.devstack.kafka import offsets_partition_for
from streamer.devstack.kafka_cluster import QuorumStatus
from streamer.devstack.redis_cluster import LocalRedisCluster
from streamer.keys import Keyspace
from streamer.produce.sender import Outgoing

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

RATE = 25.0  # messages/s offered: short streams keep the whole table near 6 minutes
MINUTES = 3.0  # of demo traffic: about 700 messages, 28 s at RATE
INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")


# --- the clusters, put back whole after each test -------------------------------------

def fully_replicated(cluster: LocalKafkaCluster, topics: list[str]) -> bool:
    """Every partition of ``topics`` has a leader and all its replicas in sync."""
    try:
        return all(p.leader is not None and p.isr == p.replicas
                   for t in topics for p in cluster.partitions(t, timeout_s=10))
    except Exception:  # a node that is still starting answered first: not yet
        return False


@pytest.fixture
def kafka(kafka_cluster: LocalKafkaCluster) -> Iterator[LocalKafkaCluster]:
    """The session's Kafka cluster; afterwards every node running and every partition of
    the internal topics in sync again, so the next test starts on a whole cluster."""
    yield kafka_cluster
    for node in kafka_cluster.nodes:
        if node.is_running():
            node.resume()  # harmless when it was not paused
        else:
            node.start()
    wait_until(lambda: fully_replicated(kafka_cluster, list(INTERNAL_TOPICS)), 180,
               "the Kafka cluster is fully replicated again", step=1.0)


@pytest.fixture
def rcluster(redis_cluster: LocalRedisCluster) -> Iterator[LocalRedisCluster]:
    """The session's Redis Cluster; afterwards every node running, every slot served and
    every master with a replica in sync (tests/redis_cluster_server.py's ``restore``)."""
    yield redis_cluster
    restore(redis_cluster, 120)


@pytest.fixture
def bundle_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The real engine (ONNX Runtime, the INT8 student) on the session's tiny bundle,
    as tests/test_chaos.py's ``[INT8 bundle]`` rows; STREAMER_TEST_BUNDLE_DIR may name an
    already built bundle instead (a developer's faster loop)."""
    given = os.environ.get("STREAMER_TEST_BUNDLE_DIR")
    bundle = Path(given) if given else request.getfixturevalue("tiny_bundle")
    return {"STREAMER_SCORER": "onnx", "STREAMER_BUNDLE_DIR": str(bundle)}


def namespace(kafka: LocalKafkaCluster, rcluster: LocalRedisCluster, tmp_path: Path,
              bundle_env: dict[str, str], **extra: str) -> Namespace:
    """A test's topics, group and key prefix on both clusters, for the worker and the
    producers alike: topics of replication factor 3 with min ISR 2, the cluster client,
    and one replica's WAIT before any offset is committed."""
    return Namespace(kafka.bootstrap, rcluster.url, tmp_path, extra_env={
        "STREAMER_TOPIC_REPLICATION_FACTOR": "3",
        "STREAMER_TOPIC_MIN_INSYNC_REPLICAS": "2",
        "STREAMER_REDIS_CLUSTER": "true",
        "STREAMER_REDIS_WAIT_REPLICAS": "1",
        **bundle_env, **extra,
    })


# --- counting --------------------------------------------------------------------------

def consumed_now(ns: Namespace) -> int | None:
    """Messages Redis has counted so far; None while the cluster cannot answer (a node is
    failing over), which the recovery clocks read as "not yet"."""
    try:
        return consumed_total(ns)
    except Exception:
        return None


class Progress:
    """Samples Redis's consumed count on a thread while a test runs: when the stream
    moved, so that a fault's recovery and its longest stall are read off afterwards
    (also when the stream ended before the fault did)."""

    def __init__(self, ns: Namespace, total: int, step_s: float = 0.5) -> None:
        self.ns, self.total, self.step_s = ns, total, step_s
        self.moves: list[tuple[float, int]] = []  # (monotonic time, consumed) at each rise
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        last = -1
        while not self._stop.is_set():
            n = consumed_now(self.ns)
            if n is not None and n > last:
                self.moves.append((time.monotonic(), n))
                last = n
            self._stop.wait(self.step_s)

    @property
    def done(self) -> bool:
        return bool(self.moves) and self.moves[-1][1] >= self.total

    def wait_advancing(self, since: float, workers: list[WorkerProcess],
                       timeout: float = 180.0) -> None:
        """Until the count rose after ``since`` (the worker scores and writes again), or
        everything was counted already."""
        wait_until(lambda: self.done or any(t > since for t, _ in self.moves), timeout,
                   "consumption resumes", workers=tuple(workers))

    def longest_stall(self, since: float) -> float:
        """The longest time from ``since`` to the end of the stream that the count stood
        still while messages were left to count."""
        times = [since] + [t for t, n in self.moves if t > since]
        ends = [t for t, n in self.moves if n >= self.total]
        times.append(ends[0] if ends else time.monotonic())
        return max(0.0, *(b - a for a, b in itertools.pairwise(times)))

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


def redis_accounts_exact(ns: Namespace, messages: list[Outgoing]) -> list[str]:
    """Mismatches between the per-topic consumed / scored / dead-lettered counts Redis
    holds (summed over its partitions, read through the cluster client) and what was sent;
    empty when they are exact."""
    s = ns.settings()
    sent: Counter[str] = Counter(m.topic for m in messages)
    valid: Counter[str] = Counter(m.topic for m in messages if is_valid(s, m))
    wrong = []
    for acc in asyncio.run(_accounts(s)):
        want = (sent[acc.topic], valid[acc.topic], sent[acc.topic] - valid[acc.topic])
        got = (acc.consumed, acc.scored, acc.dead_lettered)
        if got != want:
            wrong.append(f"{acc.topic}: consumed/scored/dead {got}, sent {want}")
    return wrong


def finish(ns: Namespace, messages: list[Outgoing], workers: list[WorkerProcess]
           ) -> Outcome:
    """Wait until every message is counted and the group committed up to every input
    partition's end, stop the workers, then verify (read_committed) and count."""
    wait_consumed(ns, len(messages), timeout=300, workers=workers)
    wait_committed(ns, timeout=240, workers=workers)
    for w in workers:
        w.stop()
    outcome = measure(ns, messages)
    wrong = redis_accounts_exact(ns, messages)
    assert not wrong, wrong
    return outcome


def started(ns: Namespace, *names: str) -> list[WorkerProcess]:
    workers = [WorkerProcess(ns, name).start() for name in names]
    for w in workers:
        w.wait_ready(240)  # model load on a busy 2-core machine
    return workers


# --- who to hit ------------------------------------------------------------------------

def busiest_leader(kafka: LocalKafkaCluster, ns: Namespace) -> tuple[LocalKafka, list[int]]:
    """The node leading the most partitions of the busiest input topic (chat: 160 of
    every 220 demo messages) and of `scored`, which every message's result goes to; and
    the chat partitions it leads."""
    s = ns.settings()
    chat = kafka.partitions(s.topics.chat)
    led = Counter(p.leader for t in (s.topics.chat, s.topics.scored)
                  for p in kafka.partitions(t) if p.leader is not None)
    node_id = led.most_common(1)[0][0]
    return kafka.node(node_id), [p.partition for p in chat if p.leader == node_id]


def group_coordinator(kafka: LocalKafkaCluster, ns: Namespace) -> LocalKafka:
    """The node that coordinates the worker's consumer group: the leader of its
    ``__consumer_offsets`` partition."""
    offsets = kafka.partitions("__consumer_offsets")
    part = offsets_partition_for(ns.settings().worker.app_id, len(offsets))
    leader = offsets[part].leader
    assert leader is not None, offsets[part]
    return kafka.node(leader)


def busiest_master(rcluster: LocalRedisCluster, ns: Namespace) -> int:
    """The Redis master holding the most chat partitions' keys (each partition's
    counts, ids and buckets share one hash slot)."""
    s = ns.settings()
    keys = Keyspace(s.redis.key_prefix)
    masters = Counter(rcluster.master_for(keys.watermark(Keyspace.tag(s.topics.chat, p)))
                      for p in range(s.topics.partitions))
    return masters.most_common(1)[0][0]


def new_controller(kafka: LocalKafkaCluster, old: int) -> QuorumStatus | None:
    """The quorum once the surviving voters elected an active controller other than
    ``old``, else None (each ask runs Kafka's quorum tool, a JVM: seconds when busy)."""
    try:
        quorum = kafka.quorum(timeout_s=15)
    except Exception:  # the tool asked the dead voter first, or timed out: not yet
        return None
    return quorum if quorum.leader_id != old else None


@dataclass
class Run:
    outcome: Outcome
    stall_s: float  # the longest the count stood still, from the fault to the stream's end
    restarts: int  # worker processes restarted by their supervisor


Fault = Callable[[Progress, list[WorkerProcess]], None]


def run_fault(ns: Namespace, messages: list[Outgoing], fault: Fault, *,
              workers: tuple[str, ...] = ("w",), at: float = 0.25, rate: float = RATE) -> Run:
    """Workers scoring a stream offered at ``rate``; once ``at`` of it is counted,
    ``fault``; then finish and count."""
    running = started(ns, *workers)
    try:
        with Progress(ns, len(messages)) as progress:
            producer = BackgroundProducer(ns, messages, rate).start()
            wait_consumed(ns, int(len(messages) * at), timeout=300, workers=running)
            fault_at = time.monotonic()
            fault(progress, running)
            producer.join()
            outcome = finish(ns, messages, running)
            stall = progress.longest_stall(fault_at)
    finally:
        for w in running:
            w.send_signal(signal.SIGCONT)  # a paused worker cannot act on SIGTERM
            w.stop()
    return Run(outcome, stall, sum(restarts(w) for w in running))


STALL = "longest stall: the count stood still, fault -> stream fully counted"


def row(fault: str, run: Run, note: str) -> None:
    """A fault-table row whose recovery is the longest stall: one clock for every cluster
    fault, which the stream's leftovers cannot flatter (a first count right after a kill
    may come from records fetched before it)."""
    record(f"{fault} [INT8 bundle]", run.outcome, run.stall_s, STALL,
           note=f"{note}; worker restarts by the supervisor {run.restarts}")


# --- Kafka faults -----------------------------------------------------------------------

def test_the_leader_of_the_busiest_partitions_sigkilled_mid_stream_and_restarted(
    kafka: LocalKafkaCluster, rcluster: LocalRedisCluster, tmp_path: Path,
    bundle_env: dict[str, str],
) -> None:
    """A hard bounce: the leader dies without a word; the controller moves its partitions
    to in-sync followers (min ISR 2 still met), the producers and the worker find the new
    leaders, and the restarted node catches up as a follower."""
    ns = namespace(kafka, rcluster, tmp_path, bundle_env)
    topics = ns.settings().topics
    seen: dict[str, float] = {}

    def kill_the_leader(progress: Progress, workers: list[WorkerProcess]) -> None:
        # The topics the worker made are replicated as asked: 3 replicas each.
        assert all(len(p.replicas) == 3 for t in (topics.chat, topics.scored)
                   for p in kafka.partitions(t))
        victim, led = busiest_leader(kafka, ns)
        victim.kill()
        killed_at = time.monotonic()
        for p in led:  # the controller notices within broker.session.timeout.ms
            kafka.wait_leader(topics.chat, p, other_than=victim.node_id, timeout_s=60)
        seen.update(node=victim.node_id, led=len(led), failover=time.monotonic() - killed_at)
        progress.wait_advancing(time.monotonic(), workers)  # on two nodes of three
        victim.start()
        wait_until(lambda: fully_replicated(kafka, [topics.chat, topics.scored]), 180,
                   "the restarted node is in sync again", step=1.0)

    run = run_fault(ns, stream(ns, seed=101, minutes=MINUTES), kill_the_leader)
    row("Kafka cluster: leader of the busiest partitions SIGKILLed, restarted", run,
        f"node {seen['node']:.0f} led {seen['led']:.0f} of 4 chat partitions; their new "
        f"leaders seen {seen['failover']:.1f} s after the kill")
    assert_clean(run.outcome)


def test_the_active_controller_sigkilled_mid_stream_and_restarted(
    kafka: LocalKafkaCluster, rcluster: LocalRedisCluster, tmp_path: Path,
    bundle_env: dict[str, str],
) -> None:
    """The quorum leader (a combined node: also a broker leading partitions) dies; the
    two other voters elect a new active controller and the stream goes on."""
    ns = namespace(kafka, rcluster, tmp_path, bundle_env)
    quorums: list[QuorumStatus] = []
    elected: list[float] = []

    def kill_the_controller(progress: Progress, workers: list[WorkerProcess]) -> None:
        quorums.append(kafka.quorum())
        victim = kafka.node(quorums[0].leader_id)
        victim.kill()

        def elected_anew() -> bool:
            quorum = new_controller(kafka, victim.node_id)
            if quorum is not None:
                quorums.append(quorum)
            return quorum is not None

        elected.append(wait_until(elected_anew, 120, "a new active controller", step=0.5))
        progress.wait_advancing(time.monotonic(), workers)
        victim.start()

    run = run_fault(ns, stream(ns, seed=103, minutes=MINUTES), kill_the_controller)
    before, after = quorums[0], quorums[-1]
    row("Kafka cluster: active controller (quorum voter) SIGKILLed, restarted", run,
        f"controller node {before.leader_id} -> {after.leader_id} (epoch "
        f"{before.leader_epoch} -> {after.leader_epoch}), seen by kafka-metadata-quorum "
        f"{elected[0]:.0f} s after the kill (each ask starts a JVM)")
    assert after.leader_id != before.leader_id and after.leader_epoch > before.leader_epoch
    assert_clean(run.outcome)


def bounce(node: LocalKafka) -> float:
    """A clean bounce (controlled shutdown, start on the same storage); its seconds."""
    t0 = time.monotonic()
    node.stop()
    node.start()
    return time.monotonic() - t0


def test_two_brokers_bounced_one_after_the_other(
    kafka: LocalKafkaCluster, rcluster: LocalRedisCluster, tmp_path: Path,
    bundle_env: dict[str, str],
) -> None:
    """A rolling restart, as an operator does it: controlled shutdown of one node, start
    it, wait until every partition is in sync again, then the next node. Slower traffic,
    so that the stream still flows during the second bounce."""
    ns = namespace(kafka, rcluster, tmp_path, bundle_env)
    s = ns.settings()
    topics = [s.topics.news, s.topics.chat, s.topics.scored, *INTERNAL_TOPICS]
    bounced: list[tuple[int, float]] = []

    def rolling_restart(progress: Progress, workers: list[WorkerProcess]) -> None:
        # The busiest partitions' leader, then the group's coordinator (or another node).
        for node in (busiest_leader(kafka, ns)[0], group_coordinator(kafka, ns)):
            done = {n for n, _ in bounced}
            if node.node_id in done:
                node = next(n for n in kafka.nodes if n.node_id not in done)
            took = bounce(node)
            wait_until(lambda: fully_replicated(kafka, topics), 180,
                       "every partition in sync before the next bounce", step=1.0)
            bounced.append((node.node_id, took))

    run = run_fault(ns, stream(ns, seed=107, minutes=MINUTES), rolling_restart, at=0.15,
                    rate=RATE / 2)
    row("Kafka cluster: two brokers bounced one after the other (rolling restart)", run,
        "; ".join(f"node {n} stopped + started in {t:.0f} s" for n, t in bounced)
        + f", each followed by a wait for every partition in sync; {RATE / 2:.1f} msg/s")
    assert_clean(run.outcome)


def test_a_worker_paused_past_the_session_timeout_during_a_broker_bounce(
    kafka: LocalKafkaCluster, rcluster: LocalRedisCluster, tmp_path: Path,
    bundle_env: dict[str, str],
) -> None:
    """A zombie and a moving coordinator at once: one of two workers is SIGSTOPped, the
    node coordinating their group is bounced while it sleeps, and it wakes after its
    partitions moved to the other worker. Its transactional producers are fenced, so it
    must exit (its supervisor starts a new member), and nothing may be committed twice."""
    session_s = 10
    ns = namespace(kafka, rcluster, tmp_path, bundle_env,
                   STREAMER_KAFKA_SESSION_TIMEOUT_S=str(session_s),
                   STREAMER_KAFKA_HEARTBEAT_INTERVAL_S="1",
                   STREAMER_COMMIT_INTERVAL_S="2")
    seen: dict[str, float] = {}

    def pause_a_worker_and_bounce(progress: Progress, workers: list[WorkerProcess]) -> None:
        zombie = workers[1]
        coordinator = group_coordinator(kafka, ns)
        zombie.send_signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        seen.update(node=coordinator.node_id, bounce=bounce(coordinator))
        time.sleep(max(0.0, session_s * 2.5 - (time.monotonic() - paused_at)))
        seen["paused"] = time.monotonic() - paused_at
        zombie.send_signal(signal.SIGCONT)
        woke_at = time.monotonic()
        # Fenced, it exits and its supervisor starts a new member (model load included).
        wait_until(lambda: bool((zombie.ready() or {}).get("ready")), 240,
                   "the woken worker is a working member again")
        seen["ready"] = time.monotonic() - woke_at

    # Long enough to flow still when the zombie wakes (about 40 s after the fault).
    run = run_fault(ns, stream(ns, seed=109, minutes=MINUTES + 2), pause_a_worker_and_bounce,
                    workers=("w1", "w2"), at=0.2)
    fenced = [(ns.data_dir / f"worker-{name}.log").read_text(errors="replace")
              .count("fenced: another worker") for name in ("w1", "w2")]
    row("Kafka cluster: a worker paused (SIGSTOP) past the session timeout while its group "
        "coordinator's broker is bounced", run,
        f"session timeout {session_s} s, paused {seen['paused']:.0f} s; node "
        f"{seen['node']:.0f} bounced in {seen['bounce']:.0f} s; woken worker (or its "
        f"restart) ready {seen['ready']:.0f} s after SIGCONT; fenced exits: paused worker "
        f"{fenced[1]}, the other {fenced[0]}")
    assert_clean(run.outcome)


# --- Redis Cluster faults -----------------------------------------------------------------

def test_a_redis_master_sigkilled_its_replica_takes_over_and_the_stream_goes_on(
    kafka: LocalKafkaCluster, rcluster: LocalRedisCluster, tmp_path: Path,
    bundle_env: dict[str, str],
) -> None:
    """The master of the busiest partitions' keys dies. Its replica holds every write the
    worker committed an offset for (each was WAITed for), so it is promoted and the
    stream goes on; writes the dead master took but never replicated were not committed
    in Kafka, and are replayed onto the new master. The old node restarts as a replica."""
    ns = namespace(kafka, rcluster, tmp_path, bundle_env)
    seen: dict[str, object] = {}

    def kill_a_master(progress: Progress, workers: list[WorkerProcess]) -> None:
        master = busiest_master(rcluster, ns)
        (replica,) = rcluster.replicas_of(master)
        rcluster.kill(master)
        killed_at = time.monotonic()
        wait_until(lambda: replica in rcluster.masters(), 60, "the replica is promoted")
        seen.update(master=master, replica=replica, promoted=time.monotonic() - killed_at)
        # Until the old node is back, the promoted master has no replica to WAIT for: the
        # worker retries those writes (uncommitted) rather than commit unreplicated ones.
        rcluster.restart(master)
        rcluster.wait_ok(120)
        seen["rejoined"] = rcluster.replicas_of(replica) == [master]
        progress.wait_advancing(time.monotonic(), workers)

    run = run_fault(ns, stream(ns, seed=113, minutes=MINUTES), kill_a_master)
    row("Redis Cluster: master SIGKILLed, replica promoted, old node restarted", run,
        f"master :{seen['master']} -> replica :{seen['replica']} promoted "
        f"{seen['promoted']:.1f} s after the kill; old node back as its replica: "
        f"{seen['rejoined']}; WAIT for 1 replica")
    assert seen["rejoined"]
    assert_clean(run.outcome)


def test_a_redis_master_paused_past_the_node_timeout_then_resumed(
    kafka: LocalKafkaCluster, rcluster: LocalRedisCluster, tmp_path: Path,
    bundle_env: dict[str, str],
) -> None:
    """SIGSTOP: the master's sockets stay open and nothing answers. Past the cluster's
    node timeout its replica takes its slots; on SIGCONT the old master learns it lost
    them and turns replica. Writes the worker made to it while it hung never return, and
    are retried on the new master before any offset is committed."""
    node_timeout_s = rcluster.settings.stack.redis_cluster_node_timeout_ms / 1000
    pause_s = max(4 * node_timeout_s, 8.0)
    ns = namespace(kafka, rcluster, tmp_path, bundle_env)
    seen: dict[str, object] = {}

    def pause_a_master(progress: Progress, workers: list[WorkerProcess]) -> None:
        master = busiest_master(rcluster, ns)
        (replica,) = rcluster.replicas_of(master)
        rcluster.pause(master)
        try:
            time.sleep(pause_s)
        finally:
            rcluster.resume(master)
        rcluster.wait_ok(120)
        seen.update(master=master, replica=replica, promoted=replica in rcluster.masters())
        progress.wait_advancing(time.monotonic(), workers)

    run = run_fault(ns, stream(ns, seed=127, minutes=MINUTES), pause_a_master)
    row(f"Redis Cluster: master paused (SIGSTOP) {pause_s:.0f} s, past the "
        f"{node_timeout_s:.0f} s node timeout, then resumed", run,
        f"master :{seen['master']}; its replica :{seen['replica']} promoted: "
        f"{seen['promoted']}")
    assert seen["promoted"]  # past the node timeout: a real fail-over, not a slow master
    assert_clean(run.outcome)
