"""``streamer bench costs``: what one event costs each server, measured on a real worker.

One worker (``streamer bench pipeline``'s worker session, in its own namespace) is fed a
seeded stream of demo messages (news and chat in the demo's mix) at a fixed rate, below
its capacity. Before and after, the servers' own counters are read:

- Redis: ``INFO commandstats`` (calls and server microseconds by command), ``INFO stats``
  (network bytes in and out), ``INFO cpu`` (the server's CPU seconds), ``INFO memory`` and
  ``DBSIZE``; at the end ``MEMORY USAGE`` of every key of the namespace, by key family.
- Kafka: the partitions' sizes on disk, from the brokers (Kafka's own ``LogDirsCommand``,
  which asks each broker's ``DescribeLogDirs``), per topic: inputs, scored, alerts, dead
  letters, the worker's internal topics, ``__consumer_offsets`` and ``__transaction_state``.
- The worker's CPU seconds (user + system of its process group, from /proc).

An idle interval first gives each counter's background rate (a worker with nothing to
do still pushes its latency histograms, renews leases and polls): the per-event figures
are the run's deltas less that background over the run's length, and the background is
reported on its own (it is per worker and second, not per event).

Completion is read from Kafka (the group's committed offsets reach the end offsets), not
from Redis, so that the tool's own polling adds no Redis command to what it measures.
Figures are only as clean as the servers are private: ``--private`` starts a Kafka and a
Redis of its own for the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from streamer.bench.pipeline.errors import BenchError
from streamer.settings import Settings

Say = Callable[[str], None]
LOG_DIRS = "org.apache.kafka.tools.LogDirsCommand"
# The only commands the tool sends between its readings (its own INFO and DBSIZE): never
# charged to events. Everything else it reads (keys, accounts) is read outside them.
OWN_COMMANDS = frozenset({"info", "dbsize"})


class CostPlan(BaseModel):
    """How the run is made; every field is in the JSON."""

    messages: int = Field(4000, ge=1, description="Messages of the seeded stream.")
    rate: float = Field(200.0, gt=0, description="Offered msg/s: below the worker's capacity, "
                        "so batches are those of a worker keeping up.")
    idle_s: float = Field(10.0, ge=0, description="Idle interval before the stream: each "
                          "counter's background rate.")
    settle_s: float = Field(3.0, ge=0, description="Wait after the last commit, for the "
                            "worker's last pushes and alert checks.")
    partitions: int = Field(4, ge=1, description="Partitions of each input topic.")
    variant: str = Field("adaptive", description="The worker's batching: adaptive or "
                         "fixed-SIZExWAITms (streamer bench pipeline's names).")
    warmup: int = Field(300, ge=0, description="Messages sent and committed before the "
                        "first reading: the worker's and the broker's first calls (a JVM "
                        "compiles its hot paths in its first minutes) are not charged.")
    seed: int = 7
    timeout_s: float = Field(600.0, gt=0, description="Most seconds for the stream to be "
                             "consumed and committed.")
    worker_env: dict[str, str] = Field(default_factory=dict, description="More environment "
                                       "for the worker (e.g. STREAMER_BUNDLE_DIR).")
    private: bool = Field(False, description="A private Kafka and Redis were started.")


class RedisCommand(BaseModel):
    command: str
    calls: int = Field(description="Calls during the run.")
    usec: int = Field(description="Server microseconds of those calls (INFO commandstats).")
    per_event: float = Field(description="Calls per event, the idle background taken off.")
    usec_per_event: float
    idle_per_s: float = Field(description="Calls per second of the idle worker.")


class KeyFamily(BaseModel):
    family: str
    keys: int
    bytes: int = Field(description="Sum of MEMORY USAGE over the family's keys.")
    bytes_per_key: float
    fields: int | None = Field(None, description="Hash fields / set members, where counted.")


class TopicBytes(BaseModel):
    topic: str
    role: str
    bytes: int = Field(description="Growth of the partitions' log size, every replica.")
    per_event: float


class Costs(BaseModel):
    """One run's figures; per event = per input message the worker consumed."""

    command: str
    date: str
    machine: str
    cpu: str
    scorer: str
    plan: CostPlan
    message_bytes_mean: float = Field(description="Mean input message value, bytes.")
    sent: int
    consumed: int = Field(description="Of the measured stream (the warm-up left out).")
    scored: int = Field(description="Warm-up included, like dead_lettered.")
    dead_lettered: int
    retained_events: int = Field(description="Events in Redis at the end (warm-up "
                                 "included): what the key families' memory holds.")
    run_s: float = Field(description="First send to the last commit, plus the settle wait.")
    idle_s: float
    # worker
    worker_cpu_s: float
    worker_idle_cpu_per_s: float
    worker_cpu_us_per_event: float = Field(description="Idle background taken off.")
    msgs_per_core_s: float = Field(description="1e6 / worker_cpu_us_per_event.")
    # redis
    redis_calls_per_event: float = Field(description="As Redis counts them: each command "
                                         "a Lua script calls counts too.")
    redis_script_calls_per_event: float = Field(description="EVALSHA / EVAL calls.")
    redis_cpu_us_per_event: float = Field(description="redis-server's CPU (INFO cpu), "
                                          "networking included.")
    redis_net_in_per_event: float
    redis_net_out_per_event: float
    redis_idle_calls_per_s: float
    redis_idle_net_bytes_per_s: float
    redis_commands: list[RedisCommand]
    redis_memory_delta: int = Field(description="INFO memory used_memory, after - before.")
    redis_keys_delta: int
    key_families: list[KeyFamily]
    bucket_seconds: int
    bucket_ttl_s: int
    # kafka
    kafka_topics: list[TopicBytes]
    kafka_bytes_written_per_event: float = Field(description="Every topic of the run, "
                                                 "replicas included.")
    replication_factor: int
    broker_cpu_us_per_event: float | None = Field(None, description="The broker's CPU, "
                                                  "measured only on a private broker.")
    notes: list[str] = Field(default_factory=list)


# --- counters --------------------------------------------------------------------------
class RedisReading(BaseModel):
    """One reading of the Redis server's counters."""

    t: float
    commands: dict[str, tuple[int, int]]  # command -> (calls, usec)
    net_in: int
    net_out: int
    cpu_s: float
    used_memory: int
    keys: int

    def minus(self, other: RedisReading) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for cmd, (calls, usec) in self.commands.items():
            c0, u0 = other.commands.get(cmd, (0, 0))
            if calls - c0 > 0 and cmd not in OWN_COMMANDS:
                out[cmd] = (calls - c0, usec - u0)
        return out


async def redis_reading(r: Any) -> RedisReading:
    stats = await r.info("commandstats")
    commands = {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
                for k, v in stats.items() if k.startswith("cmdstat_")}
    net = await r.info("stats")
    cpu = await r.info("cpu")
    mem = await r.info("memory")
    return RedisReading(t=time.monotonic(), commands=commands,
                        net_in=int(net["total_net_input_bytes"]),
                        net_out=int(net["total_net_output_bytes"]),
                        cpu_s=float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]),
                        used_memory=int(mem["used_memory"]), keys=int(await r.dbsize()))


def log_dir_sizes(settings: Settings) -> dict[str, int]:
    """Size on disk of every partition replica, ``topic-partition@broker`` -> bytes, as the
    brokers report them (Kafka's own LogDirsCommand: DescribeLogDirs on each broker)."""
    from streamer.devstack import LocalKafka, StackError

    if settings.kafka.security_protocol != "PLAINTEXT":
        raise BenchError("the Kafka sizes are read with a PLAINTEXT admin tool: run the "
                         "costs against a PLAINTEXT broker (the local stack)")
    try:
        done = LocalKafka(settings).run_tool(
            LOG_DIRS, ["--describe", "--bootstrap-server", settings.kafka.bootstrap], 180)
    except StackError as exc:
        raise BenchError(f"Kafka's LogDirsCommand did not answer: {exc}") from exc
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("{")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"Kafka's LogDirsCommand failed ({done.returncode}): "
                         f"{done.stderr.strip()[-500:]}")
    out: dict[str, int] = {}
    for broker in json.loads(line)["brokers"]:
        for d in broker["logDirs"]:
            for p in d["partitions"]:
                out[f"{p['partition']}@{broker['broker']}"] = int(p["size"])
    return out


def topic_of(replica: str) -> str:
    return replica.rsplit("@", 1)[0].rsplit("-", 1)[0]


def topic_role(settings: Settings, topic: str) -> str | None:
    """What a topic is to this run's worker; None: not this run's (another namespace)."""
    t = settings.topics
    if topic in t.inputs:
        return "input"
    if topic in (t.dlq(x) for x in t.inputs):
        return "dead letters"
    if topic == t.scored:
        return "scored"
    if topic == t.alerts:
        return "alerts"
    if topic.startswith(settings.worker.app_id):
        return "worker internal (Faust)"
    if topic in ("__consumer_offsets", "__transaction_state"):
        return "offsets + transactions (shared)"
    return None


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of one process; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def key_family(prefix: str, key: str) -> str:
    """The key's family in streamer/keys.py's layout (``:b:<epoch>`` -> bucket, ...)."""
    rest = key[len(prefix) + 1:] if key.startswith(prefix + ":") else key
    if rest.startswith("{alerts}"):
        part = rest.split(":")[1] if ":" in rest else "alerts"
        return f"alerts:{part}"
    if rest.startswith("{") and "}:" in rest:
        part = rest.split("}:", 1)[1]
        return "bucket" if part.startswith("b:") else part
    return rest.split(":", 1)[0]


async def key_families(r: Any, prefix: str) -> list[KeyFamily]:
    """MEMORY USAGE (and field counts) of every key under ``prefix``, by family."""
    acc: dict[str, list[int]] = {}
    async for raw in r.scan_iter(match=f"{prefix}:*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        fam = key_family(prefix, key)
        size = int(await r.memory_usage(key, samples=0) or 0)
        kind = await r.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        n = {"hash": r.hlen, "zset": r.zcard, "set": r.scard}.get(kind)
        fields = int(await n(key)) if n is not None else -1
        row = acc.setdefault(fam, [0, 0, 0, 0])
        row[0] += 1
        row[1] += size
        row[2] += max(fields, 0)
        row[3] += 1 if fields >= 0 else 0
    return [KeyFamily(family=f, keys=k, bytes=b, bytes_per_key=round(b / k, 1),
                      fields=c if counted else None)
            for f, (k, b, c, counted) in sorted(acc.items(), key=lambda kv: -kv[1][1])]


# --- the run ---------------------------------------------------------------------------
@contextlib.contextmanager
def private_stack(base: Settings, say: Say) -> Iterator[tuple[Settings, int | None]]:
    """A Kafka and a Redis of the run's own on free ports, in a temp folder (the jars and
    bundles stay shared); yields the settings that point at them and the broker's pid."""
    from streamer.devstack import LocalKafka, LocalRedis, StackError, free_port
    from streamer.devstack._proc import read_pid

    with tempfile.TemporaryDirectory(prefix="streamer-costs-") as tmp:
        servers = Settings(_env_file=None, data_dir=tmp, cache_dir=base.paths.cache_dir,
                           kafka_port=free_port(), kafka_controller_port=free_port(),
                           redis_port=free_port(), redis_password=None)
        kafka, redis = LocalKafka(servers), LocalRedis(servers)
        try:
            say("starting a private Kafka and Redis")
            kafka.start()
            redis.start()
            yield (base.replace(kafka_bootstrap=kafka.bootstrap, redis_url=redis.url,
                                redis_password=None, redis_cluster=False),
                   read_pid(kafka.pid_file))
        except StackError as exc:
            raise BenchError(f"the private stack did not start: {exc}") from exc
        finally:
            for server in (kafka, redis):
                with contextlib.suppress(Exception):
                    server.stop()


POLL_S = 1.0


async def poll_lag(settings: Settings, stop: Callable[[int, int], bool],
                   timeout_s: float, alive: Callable[[], bool]) -> None:
    """Read the group's lag every POLL_S until ``stop(end offsets, lag)``: from Kafka, so
    nothing is added to Redis's counters. The idle interval polls at the same pace as the
    run, so that what polling costs the broker is background, taken off with the rest."""
    from streamer.kafka.lag import read_group_lag

    deadline = time.monotonic() + timeout_s
    while True:
        t = time.monotonic()
        lag = await read_group_lag(settings)
        ends = sum(p.end for p in lag.partitions)
        if stop(ends, lag.total):
            return
        if not alive():
            raise BenchError("the worker died before it committed the stream")
        if time.monotonic() > deadline:
            raise BenchError(f"the stream was not committed in {timeout_s:g} s: lag "
                             f"{lag.total:,} of {ends:,}")
        await asyncio.sleep(max(0.0, POLL_S - (time.monotonic() - t)))


async def wait_committed(settings: Settings, sent: int, timeout_s: float,
                         alive: Callable[[], bool]) -> None:
    """Until the group's committed offsets reach the ends of the input topics and those
    hold ``sent`` records."""
    await poll_lag(settings, lambda ends, lag: ends >= sent and lag == 0, timeout_s, alive)


async def idle_for(settings: Settings, seconds: float, alive: Callable[[], bool]) -> None:
    """Wait ``seconds``, polling the lag as a run does."""
    end = time.monotonic() + seconds
    await poll_lag(settings, lambda _e, _l: time.monotonic() >= end, seconds + 60, alive)


def _alive(session: Any) -> bool:
    return session.proc is not None and session.proc.poll() is None


async def measure_costs(base: Settings, plan: CostPlan, logs: Path, *, command: str,
                        broker_pid: int | None = None, say: Say | None = None) -> Costs:
    """Run one worker on ``plan.messages`` demo messages and account for every server."""
    from streamer.bench.load import send_load
    from streamer.bench.models import _cpu_model
    from streamer.bench.pipeline.cpu import group_cpu_s
    from streamer.bench.pipeline.messages import Messages
    from streamer.bench.pipeline.preflight import check_stack, ours_scorer
    from streamer.bench.pipeline.processes import Session
    from streamer.bench.pipeline.results import Plan
    from streamer.bench.pipeline.variants import variant
    from streamer.training.card import machine_info

    say = say or (lambda _m: None)
    if base.redis.cluster:
        raise BenchError("INFO is per node on a Redis Cluster: run the costs against one "
                         "redis-server (the local stack, or --private)")
    await check_stack(base)
    v = variant(plan.variant)
    v = replace(v, name="costs", env={**v.env, **plan.worker_env})
    session = Session(base, v, Plan(variants=[v.name], partitions=plan.partitions), logs,
                      None, say)
    notes: list[str] = []
    if not plan.private:
        notes.append("shared servers: Redis's counters and __consumer_offsets / "
                     "__transaction_state count every client's work, not only this run's")
    say(f"starting a worker ({plan.variant})")
    await session.start()
    warm_sent = 0
    try:
        s = session.settings
        assert session._store is not None
        from streamer.aggregate.summary import accounts

        outgoing = Messages(plan.seed).make(s, plan.messages, plan.rate)
        msg_bytes = sum(len(m.value) for m in outgoing) / len(outgoing)
        if plan.warmup:
            say(f"warm-up: {plan.warmup:,} messages")
            warm = Messages(plan.seed + 1000).make(s, plan.warmup, plan.rate)
            warm_sent = (await send_load(s, warm, rate=None)).sent
            await wait_committed(s, warm_sent, plan.timeout_s, lambda: _alive(session))
        before = sum(a.consumed for a in await accounts(session._store))
        r = session._redis()
        pgid = session.proc.pid if session.proc is not None else 0
        sizes0 = await asyncio.to_thread(log_dir_sizes, base)
        r0, c0 = await redis_reading(r), group_cpu_s({pgid}) or 0.0
        b0 = process_cpu_s(broker_pid) if broker_pid else None
        if plan.idle_s:
            say(f"idle worker: {plan.idle_s:g} s")
            await idle_for(s, plan.idle_s, lambda: _alive(session))
        r1, c1 = await redis_reading(r), group_cpu_s({pgid}) or 0.0
        b1 = process_cpu_s(broker_pid) if broker_pid else None
        say(f"sending {len(outgoing):,} messages at {plan.rate:g} msg/s")
        total = warm_sent + len(outgoing)
        # polled while sending too, at the idle interval's pace
        poller = asyncio.create_task(wait_committed(s, total, plan.timeout_s,
                                                    lambda: _alive(session)))
        try:
            report = await send_load(s, outgoing, rate=plan.rate)
        except BaseException:
            poller.cancel()
            raise
        if report.sent != len(outgoing):
            poller.cancel()
            raise BenchError(f"only {report.sent:,} of {len(outgoing):,} messages were sent")
        say("waiting for the worker to commit the stream")
        await poller
        await asyncio.sleep(plan.settle_s)
        r2, c2 = await redis_reading(r), group_cpu_s({pgid}) or 0.0
        b2 = process_cpu_s(broker_pid) if broker_pid else None
        sizes2 = await asyncio.to_thread(log_dir_sizes, base)
        say("reading the namespace's keys")
        families = await key_families(r, s.redis.key_prefix)
        acc = await accounts(session._store)
    finally:
        await session.stop()
    retained = sum(a.consumed for a in acc)
    consumed = retained - before
    if consumed == 0:
        raise BenchError("the worker consumed nothing: see its log " + str(session.log))
    idle_s = max(r1.t - r0.t, 1e-9)
    run_s = r2.t - r1.t
    idle, run = r1.minus(r0), r2.minus(r1)

    def net(per_run: float, per_idle: float) -> float:
        # the run's count less the idle worker's background over the run's length
        return max(0.0, per_run - (per_idle / idle_s) * run_s) / consumed if plan.idle_s \
            else per_run / consumed

    cmds = [RedisCommand(command=c, calls=calls, usec=usec,
                         per_event=round(net(calls, idle.get(c, (0, 0))[0]), 4),
                         usec_per_event=round(net(usec, idle.get(c, (0, 0))[1]), 3),
                         idle_per_s=round(idle.get(c, (0, 0))[0] / idle_s, 3))
            for c, (calls, usec) in sorted(run.items(), key=lambda kv: -kv[1][0])]
    topics: dict[tuple[str, str], int] = {}
    for replica, size in sizes2.items():
        role = topic_role(s, topic_of(replica))
        if role is not None:
            key = (topic_of(replica), role)
            topics[key] = topics.get(key, 0) + size - sizes0.get(replica, 0)
    kafka = [TopicBytes(topic=t, role=role, bytes=b, per_event=round(b / consumed, 1))
             for (t, role), b in sorted(topics.items(), key=lambda kv: -kv[1]) if b > 0]
    cpu_ev = net(c2 - c1, c1 - c0) * 1e6
    broker = None
    if b0 is not None and b1 is not None and b2 is not None:
        broker = net(b2 - b1, b1 - b0) * 1e6
    if cpu_ev <= 0:
        notes.append("the worker's CPU could not be read from /proc")
    return Costs(
        command=command, date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=str(machine_info().system), cpu=_cpu_model(), scorer=ours_scorer(s), plan=plan,
        message_bytes_mean=round(msg_bytes, 1), sent=report.sent, consumed=consumed,
        scored=sum(a.scored for a in acc), dead_lettered=sum(a.dead_lettered for a in acc),
        retained_events=retained,
        run_s=round(run_s, 2), idle_s=round(idle_s, 2),
        worker_cpu_s=round(c2 - c1, 2), worker_idle_cpu_per_s=round((c1 - c0) / idle_s, 4),
        worker_cpu_us_per_event=round(cpu_ev, 1),
        msgs_per_core_s=round(1e6 / cpu_ev, 1) if cpu_ev > 0 else 0.0,
        redis_calls_per_event=round(sum(c.per_event for c in cmds), 3),
        redis_script_calls_per_event=round(sum(c.per_event for c in cmds
                                               if c.command in ("evalsha", "eval")), 4),
        redis_cpu_us_per_event=round(net(r2.cpu_s - r1.cpu_s, r1.cpu_s - r0.cpu_s) * 1e6, 1),
        redis_net_in_per_event=round(net(r2.net_in - r1.net_in, r1.net_in - r0.net_in), 1),
        redis_net_out_per_event=round(net(r2.net_out - r1.net_out, r1.net_out - r0.net_out), 1),
        redis_idle_calls_per_s=round(sum(c for c, _ in idle.values()) / idle_s, 2),
        redis_idle_net_bytes_per_s=round((r1.net_in - r0.net_in + r1.net_out - r0.net_out)
                                         / idle_s, 1),
        redis_commands=cmds, redis_memory_delta=r2.used_memory - r0.used_memory,
        redis_keys_delta=r2.keys - r0.keys, key_families=families,
        bucket_seconds=s.aggregate.bucket_seconds, bucket_ttl_s=s.aggregate.bucket_ttl_s,
        kafka_topics=kafka,
        kafka_bytes_written_per_event=round(sum(t.bytes for t in kafka) / consumed, 1),
        replication_factor=s.topics.replication_factor, broker_cpu_us_per_event=(
            round(broker, 1) if broker is not None else None),
        notes=notes,
    )


def write(costs: Costs, out: Path) -> Path:
    """costs-DATE.json under ``out``; returns its path."""
    from streamer.atomic import write_text

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"costs-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    write_text(path, costs.model_dump_json(indent=2))
    return path


def as_rows(costs: Costs) -> list[tuple[str, str, str]]:
    """(what, per event, note) for the summary table."""
    c = costs
    rows = [
        ("input message (value)", f"{c.message_bytes_mean:,.0f} B", "mean of the stream"),
        ("worker CPU", f"{c.worker_cpu_us_per_event:,.0f} us",
         f"= {c.msgs_per_core_s:,.0f} msg/s per worker core; idle "
         f"{c.worker_idle_cpu_per_s:.1%} of a core"),
        ("Redis commands", f"{c.redis_calls_per_event:.3f}",
         f"idle worker: {c.redis_idle_calls_per_s:.1f}/s"),
        ("Redis scripts (EVALSHA)", f"{c.redis_script_calls_per_event:.3f}",
         "their inner calls are in the commands above"),
        ("redis-server CPU", f"{c.redis_cpu_us_per_event:.1f} us", "INFO cpu, I/O included"),
        ("Redis bytes in / out", f"{c.redis_net_in_per_event:,.0f} / "
         f"{c.redis_net_out_per_event:,.0f} B",
         f"idle worker: {c.redis_idle_net_bytes_per_s:,.0f} B/s"),
        ("Kafka bytes written", f"{c.kafka_bytes_written_per_event:,.0f} B",
         f"every topic, RF {c.replication_factor}"),
    ]
    if c.broker_cpu_us_per_event is not None:
        rows.append(("Kafka broker CPU", f"{c.broker_cpu_us_per_event:,.0f} us",
                     "the private broker's process"))
    return rows
