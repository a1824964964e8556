"""The worker's Redis state on a real Redis Cluster (3 masters + 3 replicas, local
redis-server processes): the cluster forms, the trend store, event time and the alert
claim and outbox give the standalone results, every script stays in one hash slot,
writes wait for their replica (WAIT) before an offset may be committed, and a killed
master's replica takes over while the store goes on.

The trend-store and detector tests of test_trend_store.py and test_detect_redis.py run
here a second time, unchanged, on the cluster client (their ``store`` and ``trends``
fixtures are overridden below)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
from alert_support import (
    SettingsStore,
    alert_settings,
    apply,
    batches,
    claim,
    drive,
    engine,
    make_events,
    record,
)
from batch_support import PoisonScorer
from batch_support import record as raw_record
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, ResponseError
from redis_cluster_server import cluster_settings, cluster_stack_settings, restore
from servers import unavailable
from test_detect_redis import (
    test_a_claimed_alert_id_is_refused_a_second_time,
    test_a_worker_restarting_mid_stream_continues_from_the_shared_state,
    test_alerts_match_the_offline_detector_and_do_not_depend_on_batching,
    test_an_alert_on_a_topic_named_with_spaces_and_bars_carries_that_name,
    test_closed_bucket_reads_merge_partitions,
    test_recording_survives_redis_losing_its_scripts,
    test_two_concurrent_workers_never_emit_the_same_alert_twice,
    test_watermark_is_the_slowest_moving_partition_less_the_lateness,
)
from test_scoring_loop import Batches, loop
from test_trend_store import (
    scored,
    test_a_batch_is_applied_once_and_its_replay_is_skipped,
    test_a_replay_straddling_the_watermark_is_reported_partial,
    test_a_topic_named_with_spaces_and_bars_is_read_back_exactly,
    test_buckets_expire,
    test_every_key_shares_its_partition_hash_tag,
    test_market_and_stream_trends_reach_the_summary_and_the_dashboard,
    test_partitions_are_kept_apart_and_merged_on_read,
    test_windows_sum_only_their_buckets,
)

from streamer.aggregate import AggregateUnavailable, TrendStore, build_deltas
from streamer.aggregate.store import _APPLY, _CLAIM
from streamer.aggregate.summary import accounts
from streamer.alert.store import AlertStore
from streamer.batch import BatchProcessor
from streamer.devstack import StackError
from streamer.devstack.redis_cluster import LocalRedisCluster
from streamer.keys import Keyspace
from streamer.latency import LatencyRecorder
from streamer.latency.report import read_histograms
from streamer.metrics import Metrics
from streamer.schemas import Stamps
from streamer.score.pool import ScoringPool

# Run again here, on the cluster: imported names are collected as this module's tests.
REUSED = (
    test_a_batch_is_applied_once_and_its_replay_is_skipped,
    test_a_replay_straddling_the_watermark_is_reported_partial,
    test_a_topic_named_with_spaces_and_bars_is_read_back_exactly,
    test_buckets_expire,
    test_every_key_shares_its_partition_hash_tag,
    test_market_and_stream_trends_reach_the_summary_and_the_dashboard,
    test_partitions_are_kept_apart_and_merged_on_read,
    test_windows_sum_only_their_buckets,
    test_a_claimed_alert_id_is_refused_a_second_time,
    test_a_worker_restarting_mid_stream_continues_from_the_shared_state,
    test_alerts_match_the_offline_detector_and_do_not_depend_on_batching,
    test_an_alert_on_a_topic_named_with_spaces_and_bars_carries_that_name,
    test_closed_bucket_reads_merge_partitions,
    test_recording_survives_redis_losing_its_scripts,
    test_two_concurrent_workers_never_emit_the_same_alert_twice,
    test_watermark_is_the_slowest_moving_partition_less_the_lateness,
)


@pytest.fixture
async def store(redis_cluster: LocalRedisCluster) -> AsyncIterator[TrendStore]:
    """test_trend_store.py's store, on the cluster client."""
    s = cluster_settings(redis_cluster)
    st = TrendStore.connect(s.redis, s.aggregate)
    assert isinstance(st.redis, RedisCluster)
    yield st
    await st.close()


@pytest.fixture
async def trends(redis_cluster: LocalRedisCluster) -> AsyncIterator[TrendStore]:
    """test_detect_redis.py's store, on the cluster client."""
    st = SettingsStore.of(cluster_settings(redis_cluster))
    yield st
    await st.close()


@pytest.fixture
def healthy(redis_cluster: LocalRedisCluster) -> Iterator[LocalRedisCluster]:
    """The cluster, put back whole after a fault test: every node running and answering,
    every slot served, each master with a replica in sync."""
    yield redis_cluster
    restore(redis_cluster)


def _slots(keys: list[str]) -> set[int]:
    return {key_slot(k.encode()) for k in keys}


# --- the cluster ------------------------------------------------------------------------

def test_the_cluster_forms_three_masters_each_with_a_replica_serving_every_slot(
        redis_cluster: LocalRedisCluster) -> None:
    status = redis_cluster.status()
    masters = [n for n in status.nodes if n.role == "master"]
    replicas = [n for n in status.nodes if n.role == "replica"]
    assert status.state == "ok"
    assert len(masters) == 3 and len(replicas) == 3
    assert sum(n.slots for n in masters) == 16_384 and all(n.slots for n in masters)
    assert sorted(n.master_port for n in replicas) == sorted(n.port for n in masters)
    assert all(n.running and n.pid and not n.paused for n in status.nodes)
    info = redis_cluster._ask(masters[0].port, "CONFIG", "GET", "appendonly")
    assert info is not None and "yes" in info
    print(f"\nRedis Cluster RSS: {status.rss_mb} MB for 6 nodes "
          f"({', '.join(f'{n.port} {n.role} {n.rss_mb} MB' for n in status.nodes)})")


async def test_a_tls_cluster_with_an_acl_user_serves_the_store_and_waits_for_replicas(
        tmp_path: Path) -> None:
    """rediss:// between clients and nodes and between the nodes, an ACL user (the
    default user off), the replicas logging in to their masters as that user."""
    cluster = LocalRedisCluster(cluster_stack_settings(
        tmp_path, "rediss", redis_username="alice", redis_password="s3cret pw",
        redis_tls_ca_file=tmp_path / "tls" / "ca.pem"))
    try:
        cluster.start()
    except StackError as exc:
        cluster.stop()
        unavailable(f"TLS Redis Cluster could not start: {exc}")
    try:
        assert cluster.url.startswith("rediss://")
        cluster.wait_replicated(30)  # replication over TLS, as alice
        s = cluster_settings(cluster, redis_wait_replicas=1)
        st = TrendStore.connect(s.redis, s.aggregate)
        try:
            await st.check()
            for p in range(3):
                await apply(st, [scored(o, "negative", partition=p) for o in range(4)])
            (acc,) = await accounts(st)
            assert (acc.partitions, acc.consumed) == (3, 12)
        finally:
            await st.close()
        anonymous = s.replace(redis_username=None, redis_password=None)
        with pytest.raises(AggregateUnavailable, match="refused the login"):
            st = TrendStore.connect(anonymous.redis, anonymous.aggregate)
            try:
                await st.check()
            finally:
                await st.close()
    finally:
        cluster.stop()


# --- slots ------------------------------------------------------------------------------

@pytest.mark.parametrize("topic", ["news", "chat", "a.b_c-d"])
def test_every_script_touches_one_slot_by_construction(topic: str) -> None:
    keys = Keyspace("st")
    for partition in (0, 7, 123):
        tag = Keyspace.tag(topic, partition)
        apply_keys = [keys.watermark(tag), keys.counts(tag),
                      *[keys.bucket(tag, 1_767_000_000 + 10 * i) for i in range(50)]]
        assert len(_slots(apply_keys)) == 1  # _APPLY
        assert _slots([keys.seen_ids(tag)]) == _slots(apply_keys)  # _CLAIM, same master
    alert_keys = [keys.alert(n) for n in ("meta", "state", "seq", "lease", "recent",
                                          "progress", "seen")]
    alert_keys += [keys.outbox(s) for s in ("kafka", "webhook")]
    alert_keys += [keys.order(s) for s in ("kafka", "webhook")]
    alert_keys += [keys.claim(record(i).alert_id) for i in range(20)]
    assert len(_slots(alert_keys)) == 1  # _COMMIT, _DELIVERED, _LEASE, _PROGRESS


async def test_a_script_across_two_slots_is_refused_by_the_client_and_the_server(
        redis_cluster: LocalRedisCluster, store: TrendStore) -> None:
    a, b = store.keys.watermark("news:0"), store.keys.watermark("news:1")
    assert key_slot(a.encode()) != key_slot(b.encode())
    with pytest.raises(RedisClusterException, match="same key slot"):
        await store.redis.eval(_CLAIM, 2, a, b, 10, 60)
    node = redis.Redis(host="127.0.0.1", port=redis_cluster.master_for(a))
    try:
        with pytest.raises(ResponseError, match="same slot"):  # CROSSSLOT
            node.eval(_APPLY, 2, a, b, 0, 0, 60)
    finally:
        node.close()


# --- the same results as on one redis-server ---------------------------------------------

async def _run(st: SettingsStore) -> tuple[object, ...]:
    """A stream of 3 partitions with a spike through apply, event time and alerting;
    everything a reader sees afterwards."""
    events = make_events(11, 12, per_min=40, spike_at_min=8, partitions=3)
    eng = engine(st)
    alerts = await drive(eng, st, batches(events, 5, 40))
    lo, hi = events[0].event_time.timestamp(), events[-1].event_time.timestamp()
    alert_store = AlertStore(st.redis, st.keys.prefix, claim_ttl_s=3600)
    return (
        [a.alert_id for a in alerts],
        [(r.alert_id) for r in await alert_store.pending("kafka")],
        [r.alert_id for r in await alert_store.recent()],
        await st.window_all(lo, hi),
        await st.buckets(lo, hi),
        await st.series("ticker", "XOM", lo, hi, ["negative", "neutral"]),
        [(p.tag, p.consumed, p.scored, p.watermark) for p in await st.partition_counts()],
        await st.time_range(),
        await st.first_bucket(lo - 3600, hi),
    )


async def test_the_same_stream_gives_the_same_trends_alerts_and_outbox_as_one_server(
        redis_url: str, redis_cluster: LocalRedisCluster) -> None:
    one = SettingsStore.of(alert_settings(redis_url))
    many = SettingsStore.of(cluster_settings(redis_cluster))
    try:
        tags = [many.keys.watermark(Keyspace.tag("news", p)) for p in range(3)]
        assert len({redis_cluster.master_for(k) for k in tags}) >= 2  # reads span masters
        standalone, cluster = await _run(one), await _run(many)
        assert standalone[0], "the spike must raise alerts"
        assert cluster == standalone
    finally:
        await one.close()
        await many.close()


async def test_the_outbox_delivers_in_claim_order_on_the_cluster(
        redis_cluster: LocalRedisCluster) -> None:
    st = SettingsStore.of(cluster_settings(redis_cluster))
    alerts = AlertStore(st.redis, st.keys.prefix, claim_ttl_s=3600)
    try:
        await claim(alerts, [record(i) for i in range(3)], webhook=True)
        assert [r.alert_id for r in await alerts.pending("kafka")] == [
            record(i).alert_id for i in range(3)]
        await alerts.delivered("kafka", record(0).alert_id)
        assert await alerts.claim_status(record(0).alert_id) == "delivered"
        assert await alerts.pending_count("kafka") == 2
        assert await alerts.pending_count("webhook") == 3
        assert await alerts.lease("w1", 5_000) and not await alerts.lease("w2", 5_000)
    finally:
        await st.close()


async def test_scans_and_the_partitions_set_find_keys_on_every_master(
        redis_cluster: LocalRedisCluster) -> None:
    st = SettingsStore.of(cluster_settings(redis_cluster))
    try:
        workers = [f"w{i}" for i in range(12)]
        assert len({redis_cluster.master_for(st.keys.latency(w)) for w in workers}) == 3
        rec = LatencyRecorder()
        rec.record([Stamps(produced=0.0, requested=0.0, consumed=1.0, batched=2.0,
                           tokenized=3.0, inferred=4.0, aggregated=5.0)])
        for w in workers:
            await st.redis.hset(st.keys.latency(w), mapping=rec.encode())  # type: ignore[misc]
        merged = await read_histograms(st.redis, st.keys.prefix)
        assert max(h.get_total_count() for h in merged.values()) == len(workers)
        for p in range(6):
            await apply(st, [scored(0, "negative", partition=p)])
        assert len(await st.partitions()) == 6
        # Buckets of every partition found by SCAN (the wide-span read path).
        assert len(await st._stored(await st.partitions())) == 6
    finally:
        await st.close()


# --- acknowledged means replicated --------------------------------------------------------

def _timed(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"median {statistics.median(samples):.2f} ms, p99 {q[98]:.2f} ms"


async def test_wait_costs_this_much_per_partition_write(redis_cluster: LocalRedisCluster
                                                        ) -> None:
    """Not a timed assertion: prints what WAIT 1 adds to a partition's apply here
    (the two stores interleaved, so both see the same load on the machine)."""
    stores = {n: cluster_settings(redis_cluster, redis_wait_replicas=n) for n in (0, 1)}
    opened = {n: TrendStore.connect(s.redis, s.aggregate) for n, s in stores.items()}
    samples: dict[int, list[float]] = {0: [], 1: []}
    try:
        for i in range(200):
            for n, st in opened.items():
                evs = [scored(o, "negative", tickers=["XOM"], second=o % 60, partition=i % 6)
                       for o in range(i * 20, i * 20 + 20)]
                (delta,) = build_deltas(evs, [], 10).values()
                t = time.perf_counter()
                assert (await st.apply(delta)).status == "applied"
                samples[n].append((time.perf_counter() - t) * 1000)
    finally:
        for st in opened.values():
            await st.close()
    print(f"\napply of a 20-event partition delta on the cluster: WAIT off: "
          f"{_timed(samples[0][20:])}; WAIT 1 replica: {_timed(samples[1][20:])}")


async def test_one_server_without_replicas_never_acknowledges_a_waited_write(
        redis_url: str) -> None:
    """The standalone client WAITs too (a pipeline on one connection): with no replica
    to answer, the write is never acknowledged and the store gives up, transiently."""
    s = alert_settings(redis_url, redis_wait_replicas=1, redis_wait_timeout_ms=50,
                       redis_retry_attempts=2, redis_retry_backoff_s=0.01)
    st = TrendStore.connect(s.redis, s.aggregate)
    try:
        (delta,) = build_deltas([scored(0, "negative")], [], 10).values()
        with pytest.raises(AggregateUnavailable, match="0 of 1 Redis replica") as info:
            await st.apply(delta)
        assert info.value.transient
        assert await st.redis.get(st.keys.watermark("news:0")) == "0"  # written, not acked
    finally:
        await st.close()


async def test_a_paused_replica_leaves_the_write_unacknowledged_and_the_batch_uncommitted(
        healthy: LocalRedisCluster) -> None:
    cluster = healthy
    s = cluster_settings(cluster, redis_wait_replicas=1, redis_wait_timeout_ms=300,
                         redis_retry_attempts=2, redis_retry_backoff_s=0.05)
    st = TrendStore.connect(s.redis, s.aggregate)
    pool = ScoringPool(PoisonScorer(), threads=1, queue_depth=0)
    proc = BatchProcessor(s.input, s.topics, pool, st, metrics=Metrics())
    try:
        master = cluster.master_for(st.keys.watermark("news:0"))
        (replica,) = cluster.replicas_of(master)
        log: list[str] = []
        stopped: list[Exception] = []
        await loop(proc, log, stopped).run(Batches([[raw_record(o) for o in range(3)]], log))
        assert "ack 0-2" in log and not stopped  # the replica acknowledged

        cluster.pause(replica)
        try:
            second = [raw_record(o) for o in range(3, 6)]
            await loop(proc, log, stopped).run(Batches([second], log))
        finally:
            cluster.resume(replica)
        assert [type(e) for e in stopped] == [AggregateUnavailable]
        assert stopped[0].transient and "acknowledged" in str(stopped[0])  # type: ignore[attr-defined]
        assert "ack 3-5" not in log  # not acked, so never committed: Kafka replays it

        # The replay once the replica is back: found applied (no double count), and
        # acknowledged this time (the script rewrites the watermark, so WAIT covers it).
        stopped.clear()
        await loop(proc, log, stopped).run(Batches([second], log))
        assert "ack 3-5" in log and not stopped
        (acc,) = await accounts(st)
        assert (acc.consumed, acc.scored) == (6, 6)
    finally:
        pool.shutdown()
        await st.close()


async def test_a_killed_master_is_replaced_by_its_replica_and_the_store_goes_on(
        healthy: LocalRedisCluster) -> None:
    cluster = healthy
    durable = cluster_settings(cluster, redis_wait_replicas=1, redis_wait_timeout_ms=2000)
    # During the fail-over the promoted replica has no replica of its own yet: a store
    # without WAIT writes on; the WAITing one waits for the old master to come back.
    plain = durable.replace(redis_wait_replicas=0, redis_retry_backoff_max_s=0.5)
    a = TrendStore.connect(durable.redis, durable.aggregate)
    b = TrendStore.connect(plain.redis, plain.aggregate)
    try:
        offset = 0

        async def write(st: TrendStore, n: int) -> None:
            nonlocal offset
            for _ in range(n):
                (delta,) = build_deltas([scored(offset, "negative", second=offset % 60)],
                                        [], 10).values()
                assert (await st.apply(delta)).status == "applied"
                offset += 1

        await write(a, 20)  # each acknowledged by the replica
        master = cluster.master_for(a.keys.watermark("news:0"))
        (replica,) = cluster.replicas_of(master)
        cluster.kill(master)
        killed = time.monotonic()
        await write(b, 1)  # blocks in the store's retries until the replica took over
        recovered = time.monotonic() - killed
        await write(b, 19)
        assert cluster.master_for(a.keys.watermark("news:0")) == replica
        (acc,) = await accounts(b)
        assert acc.consumed == acc.scored == 40  # nothing acknowledged was lost

        cluster.restart(master)  # rejoins, as the new master's replica, with its data
        cluster.wait_ok(60)
        assert cluster.replicas_of(replica) == [master]
        await asyncio.wait_for(write(a, 5), 60)  # acknowledged again
        (acc,) = await accounts(a)
        assert acc.consumed == 45
        print(f"\nmaster :{master} SIGKILLed: replica :{replica} served its slots and the "
              f"next write went through after {recovered:.1f} s (cluster-node-timeout "
              f"{cluster.settings.stack.redis_cluster_node_timeout_ms} ms)")
    finally:
        await a.close()
        await b.close()
