"""Run ``streamer bench pipeline``: worker processes, the paced producer, lag sampling.

Per variant, one worker process in its own namespace (topics, consumer group, Redis
prefix: runs never mix), started once and kept warm to the end. The variants take
turns, one step at a time (round robin), so that each variant's steps spread over the
same minutes: on a shared machine the CPU the broker and the OS get drifts over minutes,
and variants measured one after the other were comparing minutes as much as settings.

1. Capacities, every variant in turn: a saturation probe (bursts sent as fast as
   possible; the drain rate is the estimate), then a ramp of offered loads, geometric
   steps from ``ramp_start`` x the probe rate, each held ``step_s``; it ends at the first
   step that is not sustainable (when the very first one is not, it steps down instead),
   then bisection steps below that one.
2. Latency at fixed loads, every variant in turn: low = ``low_fraction`` x the naive
   capacity (the target comparison), high = ``high_fraction`` x ours' (adaptive)
   capacity, then the extra loads.

Latency per step comes from the worker's HDR histograms in Redis: a snapshot before and
after the step, subtracted. A step that leaves a backlog which does not drain in time
gets the worker restarted in a fresh namespace, so the next step starts empty. The
waiting workers' CPU during each step is recorded (``Run.others_cpu_pct``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import orjson
import redis.asyncio as aioredis
from hdrh.histogram import HdrHistogram

from streamer.aggregate import AggregateUnavailable, TrendStore
from streamer.aggregate.summary import accounts
from streamer.bench.kafka_hop import kafka_hop
from streamer.bench.load import generator, send_load
from streamer.bench.pipeline import (
    Phase,
    PipelineBench,
    Plan,
    Run,
    Sample,
    VariantResult,
    capacity,
    drain_rate,
    judge,
    refine_rate,
    targets,
    today,
)
from streamer.latency.histograms import LatencyRecorder, new_histogram
from streamer.latency.report import stage_rows
from streamer.produce.sender import Outgoing
from streamer.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VARIANTS = ("naive", "adaptive", "fixed-8x5ms", "fixed-32x20ms", "fixed-64x50ms")
QUICK_VARIANTS = ("naive", "adaptive", "fixed-32x20ms")
_FIXED = re.compile(r"^fixed-(\d+)x(\d+(?:\.\d+)?)ms$")
PUSH_INTERVAL_S = 0.5

Say = Callable[[str], None]


class BenchError(RuntimeError):
    """Something a person must fix before the benchmark can run (said in the message)."""


class StackDown(BenchError):
    """Kafka or Redis does not answer."""


@dataclass(frozen=True)
class Variant:
    name: str
    kind: Literal["naive", "ours"]
    label: str
    env: dict[str, str] = field(default_factory=dict)


def variant(name: str, latency_target_ms: float = 100.0) -> Variant:
    """``naive``, ``adaptive`` or ``fixed-<max size>x<max wait ms>ms``."""
    if name == "naive":
        return Variant(name, "naive", "transformers PyTorch FP32, one message per call")
    if name == "adaptive":
        return Variant(name, "ours", f"adaptive micro-batching, target {latency_target_ms:g} ms",
                       {"STREAMER_BATCH_MODE": "adaptive",
                        "STREAMER_LATENCY_TARGET_MS": f"{latency_target_ms:g}"})
    m = _FIXED.match(name)
    if m is None:
        raise BenchError(f"unknown variant {name!r}: use naive, adaptive or fixed-SIZExWAITms "
                         "(e.g. fixed-32x20ms)")
    size, wait_ms = int(m.group(1)), float(m.group(2))
    return Variant(name, "ours", f"fixed batches: up to {size}, wait up to {wait_ms:g} ms",
                   {"STREAMER_BATCH_MODE": "fixed", "STREAMER_BATCH_MAX_SIZE": str(size),
                    "STREAMER_BATCH_MAX_WAIT_S": f"{wait_ms / 1000:g}"})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def check_stack(settings: Settings, timeout: float = 10.0) -> None:
    """Raise StackDown (saying to run ``streamer stack up``) unless Kafka and Redis answer."""
    from aiokafka.admin import AIOKafkaAdminClient

    from streamer.kafka.security import client_options, start_client

    hint = "start the local stack with `streamer stack up` (or point KAFKA_BOOTSTRAP / " \
           "REDIS_URL at running servers)"
    store = TrendStore.connect(settings)
    try:
        await asyncio.wait_for(store.check(), timeout)
    except AggregateUnavailable as exc:  # its message says what to do
        raise StackDown(str(exc)) from exc
    except (TimeoutError, OSError) as exc:
        raise StackDown(f"Redis at {settings.redis_url} does not answer ({exc}); {hint}") from exc
    finally:
        await store.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                request_timeout_ms=int(timeout * 1000),
                                **client_options(settings))
    try:
        await asyncio.wait_for(start_client(settings, admin), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
    except Exception as exc:
        raise StackDown(f"Kafka at {settings.kafka_bootstrap} does not answer "
                        f"({type(exc).__name__}: {exc}); {hint}") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def naive_bundle(settings: Settings, explicit: Path | None) -> tuple[Path, str, list[str]]:
    """The bundle whose PyTorch teacher the naive pipeline runs, what that is, and notes."""
    from streamer.bundle.locate import default_bundle_path

    notes: list[str] = []
    if explicit is not None:
        path = explicit
    else:
        full = settings.bundles_dir / "full"
        if (full / "_work" / "models" / "teacher").is_dir():
            path = full
        else:
            path = default_bundle_path(settings)
            notes.append(f"the full bundle ({full}) with its PyTorch teacher is absent: the naive "
                         f"pipeline runs the model of {path} instead")
    if not (path / "manifest.json").is_file():
        raise BenchError(f"no model bundle at {path}: build one with "
                         "`streamer models build --profile full`")
    if (path / "_work" / "models" / "teacher").is_dir():
        what = f"the bundle's teacher ({path.name}, transformers PyTorch FP32)"
    else:
        what = (f"the base encoder + fresh heads (transformers PyTorch FP32; {path.name} keeps no "
                "teacher checkpoint)")
        notes.append(f"{path} keeps no PyTorch teacher: the naive pipeline runs the base "
                     "encoder with fresh heads (same architecture, so the same cost)")
    return path, what, notes


def ours_scorer(settings: Settings) -> str:
    if settings.scorer == "baseline":
        return "scorer: Naive Bayes baseline"
    from streamer.bundle.locate import default_bundle_path

    return (f"scorer {settings.scorer}: bundle {default_bundle_path(settings)}, variant "
            f"{settings.bundle_variant}")


def subtract(after: dict[str, HdrHistogram], before: dict[str, HdrHistogram]
             ) -> dict[str, HdrHistogram]:
    """Per stage, what was recorded between two snapshots of the same workers."""
    out: dict[str, HdrHistogram] = {}
    for name, h in after.items():
        prev = before.get(name)
        old = {it.value_iterated_to: it.count_at_value_iterated_to
               for it in prev.get_recorded_iterator()} if prev is not None else {}
        d = new_histogram()
        for it in h.get_recorded_iterator():
            n = it.count_at_value_iterated_to - old.get(it.value_iterated_to, 0)
            if n > 0:
                d.record_value(it.value_iterated_to, n)
        out[name] = d
    return out


class Messages:
    """Valid demo messages (news and chat, no malformed ones), event time ~ send time."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def make(self, settings: Settings, n: int, rate: float) -> list[Outgoing]:
        from streamer.produce.demo import DemoConfig, DemoGenerator

        topics = {"news": settings.topic_news, "chat": settings.topic_chat}
        out: list[Outgoing] = []
        while len(out) < n:
            self.seed += 1
            per_min = max(rate, 1.0) * 60.0
            minutes = max(0.05, (n - len(out)) / per_min * 1.2)
            cfg = DemoConfig(seed=self.seed, minutes=minutes, news_per_min=per_min / 4,
                             chat_per_min=per_min * 3 / 4, bad_fraction=0.0, spike_at_min=None,
                             start=datetime.now(UTC) + timedelta(seconds=1),
                             max_text_chars=settings.max_text_chars,
                             max_message_bytes=settings.max_message_bytes)
            msgs = DemoGenerator(cfg).generate()[0]
            out += [Outgoing(topics[m.kind], None, m.value) for m in msgs]
        return out[:n]


class Session:
    """One variant's worker process in its own namespace."""

    def __init__(self, base: Settings, v: Variant, plan: Plan, logs: Path, naive: Path | None,
                 say: Say) -> None:
        self.base, self.v, self.plan, self.logs, self.naive, self.say = (
            base, v, plan, logs, naive, say)
        self.proc: subprocess.Popen[bytes] | None = None
        self.uid = ""
        self.settings = base
        self.port = 0
        self.restarts = -1
        self._store: TrendStore | None = None
        self.log = logs / f"{v.name}.log"

    # --- lifecycle -------------------------------------------------------------------------
    def _namespace(self) -> dict[str, str]:
        u = self.uid
        return {
            "STREAMER_APP_ID": f"bench-{self.v.name}-{u}",
            "STREAMER_TOPIC_NEWS": f"bench-news-{u}",
            "STREAMER_TOPIC_CHAT": f"bench-chat-{u}",
            "STREAMER_TOPIC_SCORED": f"bench-scored-{u}",
            "STREAMER_TOPIC_ALERTS": f"bench-alerts-{u}",
            "STREAMER_REDIS_KEY_PREFIX": f"b{u}",
            "STREAMER_TOPIC_PARTITIONS": str(self.plan.partitions),
        }

    async def start(self) -> None:
        self.restarts += 1
        self.uid = uuid.uuid4().hex[:8]
        ns = self._namespace()
        # Validated like the worker will validate them (env strings -> typed settings).
        self.settings = type(self.base).model_validate({
            **self.base.model_dump(),
            **{k.removeprefix("STREAMER_").lower(): v for k, v in ns.items()}})
        self.port = free_port()
        env = {**os.environ, **ns, **self.v.env,
               "KAFKA_BOOTSTRAP": self.base.kafka_bootstrap, "REDIS_URL": self.base.redis_url,
               "STREAMER_DATA_DIR": str(self.base.data_dir),
               "STREAMER_WEB_PORT": str(self.port),
               "STREAMER_WORKER_ID": f"{self.v.name}-{self.uid}",
               "STREAMER_LATENCY_PUSH_INTERVAL_S": str(PUSH_INTERVAL_S)}
        if self.v.kind == "naive":
            assert self.naive is not None
            cmd = [sys.executable, "-m", "streamer.bench.naive", "--bundle", str(self.naive),
                   "--threads", str(self.plan.naive_threads), "--worker-id",
                   f"{self.v.name}-{self.uid}"]
        else:
            cmd = [sys.executable, "-m", "streamer.cli.main", "worker", "--loglevel", "warning"]
        self.logs.mkdir(parents=True, exist_ok=True)
        self.log = self.logs / f"{self.v.name}-{self.uid}.log"
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                         cwd=REPO, start_new_session=True)
        self._store = TrendStore.connect(self.settings)
        await self._wait_ready()

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    async def _wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise BenchError(f"the {self.v.name} worker exited ({self.log}):\n{self.tail()}")
            if await self._ready():
                return
            await asyncio.sleep(0.5)
        raise BenchError(f"the {self.v.name} worker was not ready in {timeout:.0f} s "
                         f"({self.log}):\n{self.tail()}")

    async def _ready(self) -> bool:
        if self.v.kind == "naive":
            from streamer.bench.naive import ready_key

            return bool(await self._redis().get(ready_key(self.settings)))

        def probe() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz",
                                            timeout=2) as r:
                    return bool(orjson.loads(r.read()).get("ready"))
            except (urllib.error.URLError, OSError, ValueError):
                return False

        return await asyncio.to_thread(probe)

    def _redis(self) -> aioredis.Redis:
        assert self._store is not None
        return self._store.redis

    async def stop(self, cleanup: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                await asyncio.to_thread(self.proc.wait, 30)
        if cleanup and self.uid:
            await self._cleanup()
        if self._store is not None:
            await self._store.close()
            self._store = None

    async def _cleanup(self) -> None:
        """Best effort: the namespace's topics and Redis keys go (nothing else is touched)."""
        from streamer.kafka.admin import delete_topics, project_topics

        with contextlib.suppress(Exception):
            r = self._redis()
            keys = [k async for k in r.scan_iter(match=f"{self.settings.redis_key_prefix}:*",
                                                 count=500)]
            for i in range(0, len(keys), 500):
                await r.unlink(*keys[i:i + 500])
        with contextlib.suppress(Exception):
            await delete_topics(self.base, project_topics(self.settings))

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # --- measurements ----------------------------------------------------------------------
    async def completed(self) -> int:
        r = self._redis()
        if self.v.kind == "naive":
            from streamer.bench.naive import counts_key

            return sum(int(x) for x in await r.hvals(counts_key(self.settings)))  # type: ignore[misc]
        assert self._store is not None
        return sum(a.consumed for a in await accounts(self._store))

    async def histograms(self) -> dict[str, HdrHistogram]:
        r = self._redis()
        payloads = [await r.hgetall(k) async for k in  # type: ignore[misc]
                    r.scan_iter(match=f"{self.settings.redis_key_prefix}:latency:*", count=100)]
        return LatencyRecorder.decode_merge(payloads)

    async def hold(self, messages: Messages, *, rate: float | None, n: int, phase: Phase,
                   load: str = "", expect_rate: float | None = None,
                   drain_timeout: float | None = None) -> Run:
        """Send ``n`` messages at ``rate`` (None: as fast as possible), sample the backlog,
        wait for the drain; the step's latency is the histograms' difference."""
        plan = self.plan
        outgoing = messages.make(self.settings, n, rate or expect_rate or 200.0)
        duration = n / rate if rate else 0.0
        before = await self.histograms()
        c0 = await self.completed()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sender = asyncio.create_task(send_load(self.settings, outgoing, rate=rate))
        samples: list[Sample] = []
        every = plan.sample_s if rate else min(plan.sample_s, 0.25)
        tag = f"[{self.v.name}] {phase}{' ' + load if load else ''} "
        tag += f"{rate:,.1f} msg/s" if rate else f"burst of {n:,}"

        async def sample() -> Sample:
            t = loop.time() - t0
            done = await self.completed() - c0
            scheduled = min(n, int(rate * t)) if rate else n
            s = Sample(t=round(t, 2), done=done, backlog=max(0, scheduled - done))
            samples.append(s)
            self.say(f"{tag}: {t:5.1f} s, completed {done:,}/{n:,}, backlog {s.backlog:,}")
            return s

        while not sender.done():
            await asyncio.wait({sender}, timeout=every)
            if self.proc is not None and self.proc.poll() is not None:
                sender.cancel()
                raise BenchError(f"the {self.v.name} worker died ({self.log}):\n{self.tail()}")
            await sample()
        report = sender.result()
        t_send = loop.time() - t0
        done_at_send = (await sample()).done
        limit = drain_timeout if drain_timeout is not None else max(30.0, 2 * duration)
        drained_s: float | None = None
        while True:
            s = await sample()
            if s.done >= report.sent:
                drained_s = round(max(0.0, s.t - t_send), 2)
                break
            if loop.time() - t0 - t_send > limit:
                break
            if self.proc is not None and self.proc.poll() is not None:
                raise BenchError(f"the {self.v.name} worker died ({self.log}):\n{self.tail()}")
            await asyncio.sleep(every)
        verdict = None
        if rate:
            verdict = judge(samples, rate, duration, drained_s, plan.grace(duration),
                            plan.tolerance)
            # the schedule spans n / rate; the last message leaves one interval earlier
            completed_rate = done_at_send / max(t_send, duration, 1e-9)
        else:
            completed_rate = drain_rate(samples, report.sent) or 0.0
        await asyncio.sleep(PUSH_INTERVAL_S * 2 + 0.3)  # the worker's last histogram push
        rows = stage_rows(subtract(await self.histograms(), before))
        e2e = next((r for r in rows if r.stage == "end_to_end"), None)
        run = Run(variant=self.v.name, kind=self.v.kind, phase=phase, load=load,
                  offered_rate=round(rate, 2) if rate else None, duration_s=round(duration, 2),
                  sent=report.sent, completed=samples[-1].done if samples else 0,
                  completed_rate=round(completed_rate, 2), samples=samples, verdict=verdict,
                  e2e=e2e, stages=[r for r in rows if r.stage != "end_to_end"],
                  namespace=self.uid)
        if drained_s is None:  # a backlog is left: the next step needs an empty pipeline
            self.say(f"[{self.v.name}] backlog did not drain in {limit:.0f} s: restarting the "
                     "worker in a fresh namespace")
            await self.restart()
        return run


def group_cpu_s(pgids: set[int]) -> float | None:
    """CPU seconds (user + system) of the live processes in these process groups, from one
    pass over /proc; None where /proc is not there to tell."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for pid in entries:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone in the meantime
        if int(fields[2]) in pgids:  # after "pid (comm)": state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


@dataclass
class Runner:
    base: Settings
    plan: Plan
    out: Path
    naive_path: Path | None
    say: Say
    status: Say
    runs: list[Run] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    # FIFO: a variant that finishes a step queues behind the others, so they take turns
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    t0: float = field(default_factory=time.monotonic)

    def _others_cpu_s(self, s: Session) -> float | None:
        # each worker leads its own process group (start_new_session)
        return group_cpu_s({o.proc.pid for o in self.sessions
                            if o is not s and o.proc is not None and o.proc.poll() is None})

    async def step(self, s: Session, messages: Messages, *, rate: float | None, n: int,
                   phase: Phase, load: str = "", expect_rate: float | None = None,
                   drain_timeout: float | None = None) -> Run:
        """One step of ``s``, in its turn."""
        async with self.turn:
            at = time.monotonic()
            cpu0 = await asyncio.to_thread(self._others_cpu_s, s)
            r = await s.hold(messages, rate=rate, n=n, phase=phase, load=load,
                             expect_rate=expect_rate, drain_timeout=drain_timeout)
            cpu1 = await asyncio.to_thread(self._others_cpu_s, s)
            took = time.monotonic() - at
            r.at_s = round(at - self.t0, 1)
            if cpu0 is not None and cpu1 is not None and took > 0:
                r.others_cpu_pct = round(max(0.0, cpu1 - cpu0) / took * 100, 1)
        self.runs.append(r)
        return r

    async def probe(self, s: Session, messages: Messages) -> float:
        """Bursts as fast as possible: a first small one (warm-up, and a first estimate for
        sizing), then until one lasts >= half the probe time (3 bursts at most). A batching
        controller needs a long enough backlog to reach its steady batch size."""
        n, rate = 50, None
        for i in range(3):
            r = await self.step(s, messages, rate=None, n=n, phase="probe", expect_rate=rate,
                                drain_timeout=max(60.0, 8 * self.plan.probe_s))
            rate = r.completed_rate or rate
            took = n / rate if rate else 0.0
            if rate is None or (i > 0 and took >= self.plan.probe_s / 2):
                break
            n = int(min(50_000, max(n * 2, rate * self.plan.probe_s)))
        if not rate:
            raise BenchError(f"the {s.v.name} probe completed nothing ({s.log}):\n{s.tail()}")
        self.say(f"[{s.v.name}] saturated drain rate about {rate:,.1f} msg/s")
        return rate

    async def ramp(self, s: Session, messages: Messages, probe_rate: float) -> None:
        p = self.plan
        rate = probe_rate * p.ramp_start
        best: Run | None = None
        down = False
        for _ in range(p.max_steps):
            r = await self.step(s, messages, rate=rate, n=max(1, round(rate * p.step_s)),
                                phase="ramp")
            v = r.verdict
            self.say(f"[{s.v.name}] ramp {rate:,.1f} msg/s: completed {r.completed_rate:,.1f} "
                     f"msg/s, p99 {r.p99_ms or 0:,.0f} ms -> "
                     f"{'sustainable' if r.sustainable else 'NOT sustainable'}"
                     f" ({v.reason if v else ''})")
            if r.sustainable:
                best = r
                if down:
                    break
                rate *= p.ramp_factor
            elif best is not None:
                break
            else:
                down = True
                rate /= p.ramp_factor ** 2
        await self._refine(s, messages)

    async def _refine(self, s: Session, messages: Messages) -> None:
        """Bisect (geometrically) between the highest sustainable ramp step and the lowest
        unsustainable one above it: a x1.15 ramp alone knows the capacity to 15%."""
        for _ in range(self.plan.refine_steps):
            rate = refine_rate(self.runs, s.v.name)
            if rate is None:
                return
            r = await self.step(s, messages, rate=rate,
                                n=max(1, round(rate * self.plan.step_s)), phase="ramp")
            self.say(f"[{s.v.name}] refine {rate:,.1f} msg/s: completed "
                     f"{r.completed_rate:,.1f} msg/s -> "
                     f"{'sustainable' if r.sustainable else 'NOT sustainable'}")

    async def latency(self, s: Session, messages: Messages, load: str, rate: float,
                      round_: int = 0) -> None:
        r = await self.step(s, messages, rate=rate,
                            n=max(1, round(rate * self.plan.duration_s)), phase="latency",
                            load=load)
        r.round = round_
        e = r.e2e
        of = f" (round {round_ + 1}/{self.plan.rounds})" if self.plan.rounds > 1 else ""
        self.say(f"[{s.v.name}] {load} load{of} {rate:,.1f} msg/s: p50 {e.p50_ms if e else 0:,.1f} "
                 f"ms, p99 {e.p99_ms if e else 0:,.1f} ms, completed {r.completed_rate:,.1f} "
                 f"msg/s{'' if r.sustainable else ' (NOT sustainable)'}")

    async def measure_capacity(self, s: Session, result: VariantResult,
                               messages: Messages) -> None:
        """Start the worker (in its turn: loading a model is CPU work), probe, ramp."""
        v = s.v
        async with self.turn:
            self.say(f"[{v.name}] starting the worker ({v.label})")
            await s.start()
        result.probe_rate = round(await self.probe(s, messages), 2)
        await self.ramp(s, messages, result.probe_rate)
        best = capacity(self.runs, v.name)
        if best is not None:
            result.capacity, result.capacity_completed = best.offered_rate, best.completed_rate
            result.limit_found = any(
                r.variant == v.name and r.phase == "ramp" and not r.sustainable
                and (r.offered_rate or 0.0) > (best.offered_rate or 0.0) for r in self.runs)
            if not result.limit_found:
                self.say(f"[{v.name}] every ramp step was sustainable: its capacity, "
                         f"{best.offered_rate:,.1f} msg/s, is a lower bound")

    async def measure_latency(self, s: Session, result: VariantResult, messages: Messages,
                              low: float, high: float) -> None:
        """Each round: the low load for every variant, the high one for ours, then the extra
        loads."""
        for k in range(self.plan.rounds):
            await self.latency(s, messages, "low", low, k)
            if s.v.kind == "ours":
                await self.latency(s, messages, "high", high, k)
            for extra in self.plan.loads:
                if extra <= (result.capacity or result.probe_rate or 0.0):
                    await self.latency(s, messages, "extra", extra, k)


async def side_by_side(coros: Iterable[Coroutine[object, object, None]]) -> None:
    """Run the variants' coroutines together; the first failure stops the others and is
    raised as itself (a BenchError keeps its message for the person at the terminal)."""
    try:
        async with asyncio.TaskGroup() as tg:
            for c in coros:
                tg.create_task(c)
    except ExceptionGroup as eg:
        raise eg.exceptions[0] from None


async def run_pipeline_bench(base: Settings, plan: Plan, out: Path, *, command: str,
                             naive_path: Path | None = None, say: Say | None = None,
                             status: Say | None = None) -> PipelineBench:
    from streamer.bench.models import _cpu_model
    from streamer.training.card import machine_info

    say = say or (lambda _m: None)
    status = status or (lambda _m: None)
    variants = [variant(n, plan.latency_target_ms) for n in plan.variants]
    names = [v.name for v in variants]
    if "naive" not in names or "adaptive" not in names:
        raise BenchError("--variants must include naive and adaptive (the targets compare them)")
    await check_stack(base)
    bundle, naive_model, notes = naive_bundle(base, naive_path)
    # naive first, then adaptive: the order of their first turns
    variants.sort(key=lambda v: (v.name != "naive", v.name != "adaptive"))
    runner = Runner(base, plan, out, bundle, say, status)
    results = [VariantResult(name=v.name, kind=v.kind, label=v.label, env=v.env)
               for v in variants]
    runner.sessions = [Session(base, v, plan, out / "logs", bundle, status) for v in variants]
    pairs = list(zip(runner.sessions, results, strict=True))
    messages = Messages(plan.seed)
    if plan.warmup_s > 0:
        status(f"warming the broker up: {plan.warmup_rate:,.0f} msg/s for {plan.warmup_s:g} s")
        n = max(1, round(plan.warmup_rate * plan.warmup_s))
        try:
            await kafka_hop(base, [m.value for m in messages.make(base, n, plan.warmup_rate)],
                            plan.warmup_rate, timeout_s=max(30.0, plan.warmup_s))
        except Exception as exc:
            raise BenchError(f"the broker's warm-up failed ({exc!r}): check Kafka at "
                             f"{base.kafka_bootstrap}, or skip it with --warmup-s 0") from exc
    runner.t0 = time.monotonic()
    try:
        await side_by_side(runner.measure_capacity(s, res, messages) for s, res in pairs)
        # the low load is a share of the naive capacity, the high one of adaptive's
        naive, mine = results[0], results[1]
        low = round(plan.low_fraction * (naive.capacity or naive.probe_rate or 0.0), 2)
        high = round(plan.high_fraction * (mine.capacity or mine.probe_rate or 0.0), 2)
        await side_by_side(runner.measure_latency(s, res, messages, low, high)
                           for s, res in pairs)
    finally:
        for s, res in pairs:
            res.restarts = max(0, s.restarts)
            await s.stop()
    hop = None
    if low:
        status(f"the Kafka hop alone at {low:,.1f} msg/s")
        n = max(1, round(low * plan.duration_s))
        try:
            hop = await kafka_hop(base, [m.value for m in messages.make(base, n, low)], low)
        except Exception as exc:  # information only: the pipelines' figures stand without it
            notes.append(f"the Kafka hop alone was not measured: {exc!r}")
        if hop is not None:
            say(f"the Kafka hop alone at {low:,.1f} msg/s: p50 {hop.p50_ms:,.1f} ms, "
                f"p99 {hop.p99_ms:,.1f} ms")
    for r in results:
        if r.capacity is not None and not r.limit_found:
            notes.append(f"{r.name}: every ramp step was sustainable (--max-steps "
                         f"{plan.max_steps}): its capacity is a lower bound")
        if r.capacity is None:
            notes.append(f"{r.name}: no ramp step was sustainable; its fixed loads used the "
                         "probe's drain rate instead of a capacity")
    if any(r.restarts for r in results):
        notes.append("a step left a backlog that did not drain: its worker was restarted in a "
                     "fresh namespace (restarts: " + ", ".join(
                         f"{r.name} {r.restarts}" for r in results if r.restarts) + ")")
    bench = PipelineBench(
        command=command, date=today(), machine=machine_info(), cpu=_cpu_model(), plan=plan,
        naive_model=naive_model, ours_scorer=ours_scorer(base), load_generator=generator(base),
        variants=results,
        runs=runner.runs, low_rate=low, high_rate=high, kafka_hop=hop,
        wall_s=round(time.monotonic() - runner.t0, 1), notes=notes,
    )
    bench.targets = targets(bench.runs, bench.variants, low)
    return bench
