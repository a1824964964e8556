"""Worker process lifecycle: one variant's worker (ours, the naive app or the Quix Streams
peer) in its own namespace.

Starting it (namespace, environment, readiness), stopping it, clearing its topics and Redis
keys, restarting it in a fresh namespace, and reading what it reports in Redis (messages
completed, latency histograms). Each worker leads its own process group, so it can be
stopped, and its CPU counted, with its children.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
from hdrh.histogram import HdrHistogram

from streamer.aggregate import TrendStore
from streamer.aggregate.summary import accounts
from streamer.bench.pipeline.errors import BenchError
from streamer.bench.pipeline.preflight import bundle_env
from streamer.bench.pipeline.results import Plan
from streamer.bench.pipeline.variants import Variant
from streamer.devstack import free_port
from streamer.keys import Keyspace
from streamer.latency.report import read_histograms
from streamer.redis_client import RedisClient
from streamer.settings import Settings

REPO = Path(__file__).resolve().parents[3]
PUSH_INTERVAL_S = 0.5

Say = Callable[[str], None]


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
        self.settings = self.base.with_env(ns)
        self.port = free_port()
        env = {**os.environ, **ns, **self.v.env,
               "KAFKA_BOOTSTRAP": self.base.kafka.bootstrap, "REDIS_URL": self.base.redis.url,
               "STREAMER_DATA_DIR": str(self.base.paths.data_dir),
               "STREAMER_WEB_PORT": str(self.port),
               "STREAMER_WORKER_ID": f"{self.v.name}-{self.uid}",
               "STREAMER_LATENCY_PUSH_INTERVAL_S": str(PUSH_INTERVAL_S),
               # One model for the whole measurement: no upgrade mid-run.
               "STREAMER_MODEL_WATCH_S": "0", **bundle_env(self.base)}
        if self.v.kind == "naive":
            assert self.naive is not None
            cmd = [sys.executable, "-m", "streamer.bench.naive", "--bundle", str(self.naive),
                   "--threads", str(self.plan.naive_threads), "--worker-id",
                   f"{self.v.name}-{self.uid}"]
        elif self.v.kind == "peer":
            # the worker's bundle: the same model as ours, so the model is not the difference
            from streamer.bench.peer import peer_pythonpath
            from streamer.bundle.locate import default_bundle_path

            pythonpath = peer_pythonpath(env.get("PYTHONPATH"))
            if pythonpath:
                env["PYTHONPATH"] = pythonpath
            cmd = [sys.executable, "-m", "streamer.bench.peer_quix", "--bundle",
                   str(default_bundle_path(self.settings)), "--threads",
                   str(self.plan.peer_threads), "--worker-id", f"{self.v.name}-{self.uid}",
                   *self.v.args]
        else:
            cmd = [sys.executable, "-m", "streamer.cli.main", "worker", "--loglevel", "warning"]
        self.logs.mkdir(parents=True, exist_ok=True)
        self.log = self.logs / f"{self.v.name}-{self.uid}.log"
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                         cwd=REPO, start_new_session=True)
        self._store = TrendStore.connect(self.settings.redis, self.settings.aggregate)
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
        if self.v.kind == "peer":
            from streamer.bench import peer

            return bool(await self._redis().get(peer.ready_key(self.settings)))

        def probe() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz",
                                            timeout=2) as r:
                    return bool(orjson.loads(r.read()).get("ready"))
            except (urllib.error.URLError, OSError, ValueError):
                return False

        return await asyncio.to_thread(probe)

    def _redis(self) -> RedisClient:
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
            match = Keyspace(self.settings.redis.key_prefix).everything
            keys = [k async for k in r.scan_iter(match=match, count=500)]
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
        if self.v.kind == "peer":
            from streamer.bench import peer

            key = peer.counts_key(self.settings, "topic")
            return sum(int(x) for x in await r.hvals(key))  # type: ignore[misc]
        assert self._store is not None
        return sum(a.consumed for a in await accounts(self._store))

    async def histograms(self) -> dict[str, HdrHistogram]:
        return await read_histograms(self._redis(), self.settings.redis.key_prefix)

    async def batch_stats(self) -> tuple[float, float] | None:
        """(events, batches) so far from the worker's ``streamer_batch_size`` histogram on
        its /metrics (its sum and count); None for the naive app and the peer, or when the
        worker does not answer. Two readings' difference gives a step's mean batch size."""
        if self.v.kind != "ours":
            return None
        token = self.settings.web.token

        def read() -> tuple[float, float] | None:
            from prometheus_client.parser import text_string_to_metric_families

            req = urllib.request.Request(f"http://127.0.0.1:{self.port}/metrics")
            if token is not None:
                req.add_header("Authorization", f"Bearer {token.get_secret_value()}")
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    text = r.read().decode("utf-8")
            except (urllib.error.URLError, OSError, ValueError):
                return None
            got = {s.name: s.value for f in text_string_to_metric_families(text)
                   if f.name == "streamer_batch_size" for s in f.samples
                   if s.name in ("streamer_batch_size_sum", "streamer_batch_size_count")}
            if len(got) < 2:
                return None
            return got["streamer_batch_size_sum"], got["streamer_batch_size_count"]

        return await asyncio.to_thread(read)
