"""The Redis trend store: exactly-once application of batch deltas, and window reads."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

from redis.commands.core import AsyncScript
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    MovedError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamer.aggregate.delta import PartitionDelta
from streamer.keys import SCOPES, Keyspace, Scope, parse_field
from streamer.keys import field as field_name
from streamer.redis_client import (
    CLUSTER_TRANSIENT,
    RedisClient,
    ReplicasBehind,
    acknowledged,
    connect,
    is_cluster,
    register_script,
)
from streamer.settings import AggregateSettings, RedisSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
# Retried with backoff however Redis answers them: a cluster in motion, replicas behind.
_RETRY_WRITE: tuple[type[Exception], ...] = (*CLUSTER_TRANSIENT, ReplicasBehind)


def _aw(value: Awaitable[T] | T) -> Awaitable[T]:
    # redis-py types its commands as "awaitable or value" for both clients; on the
    # asyncio client they are always awaitable.
    return cast(Awaitable[T], value)

# One partition's share of a batch, applied atomically with its offset watermark.
# '#!lua' (no flags) makes Redis refuse the whole script up front when it is out of
# memory, instead of failing half-way through the writes.
# A replay (duplicate, partial) rewrites the watermark unchanged: a write, so that a WAIT
# after it on the same connection also waits for the first attempt's writes to reach
# the replicas (WAIT covers what its own connection wrote: redis_client.acknowledged).
_APPLY = """#!lua
local raw = redis.call('GET', KEYS[1])
local wm = tonumber(raw or '-1')
local first = tonumber(ARGV[1])
local last = tonumber(ARGV[2])
if wm >= last then redis.call('SET', KEYS[1], raw); return {0, wm} end
if wm >= first then redis.call('SET', KEYS[1], raw); return {-1, wm} end
local ttl = tonumber(ARGV[3])
local i = 4
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2
end
local bmin = tonumber(ARGV[i]); local bmax = tonumber(ARGV[i + 1]); i = i + 2
if bmin >= 0 then
  local cur = tonumber(redis.call('HGET', KEYS[2], 'bmin') or '-1')
  if cur < 0 or bmin < cur then redis.call('HSET', KEYS[2], 'bmin', bmin) end
  cur = tonumber(redis.call('HGET', KEYS[2], 'bmax') or '-1')
  if bmax > cur then redis.call('HSET', KEYS[2], 'bmax', bmax) end
end
for k = 3, #KEYS do
  local ni = tonumber(ARGV[i]); i = i + 1
  for _ = 1, ni do
    redis.call('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1]); i = i + 2
  end
  local nf = tonumber(ARGV[i]); i = i + 1
  for _ = 1, nf do
    redis.call('HINCRBYFLOAT', KEYS[k], ARGV[i], ARGV[i + 1]); i = i + 2
  end
  redis.call('EXPIRE', KEYS[k], ttl)
end
redis.call('SET', KEYS[1], last)
return {1, last}
"""


# One partition's event ids, in offset order, each scored by the offset it was first
# seen at. An offset is a repeat iff its id was first seen at a lower offset at most
# ARGV[1] offsets before it; otherwise the offset becomes the id's first. So the answer
# for an offset is the same however often it is asked (a replay gets the first attempt's
# answer). Ids more than ARGV[1] offsets behind the partition's newest are forgotten.
_CLAIM = """#!lua
local window = tonumber(ARGV[1])
local out = {}
local newest = -1
for i = 3, #ARGV, 2 do
  local offset = tonumber(ARGV[i])
  local first = redis.call('ZSCORE', KEYS[1], ARGV[i + 1])
  first = first and tonumber(first)
  if first and first < offset and offset - first <= window then
    out[#out + 1] = first
  else
    if first ~= offset then redis.call('ZADD', KEYS[1], offset, ARGV[i + 1]) end
    out[#out + 1] = -1
  end
  if offset > newest then newest = offset end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', newest - window))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return out
"""


class AggregateUnavailable(RuntimeError):
    """Redis refused or stayed unreachable past the retry budget; nothing was committed.

    ``transient``: Redis did not answer (a restart may find it back); otherwise it refused
    (out of memory, read-only, cannot persist), which needs an operator.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def refusal(exc: ResponseError) -> str:
    """What a refused write means for the operator, and what to do about it."""
    if isinstance(exc, OutOfMemoryError):
        return (f"Redis is out of memory (OOM: {exc}); raise its maxmemory or free memory "
                "(STREAMER_BUCKET_TTL_S bounds what the app keeps), then restart the worker")
    if isinstance(exc, ReadOnlyError):
        return f"Redis is read-only ({exc}); point REDIS_URL at the primary"
    if str(exc).startswith("MISCONF"):
        return (f"Redis cannot persist to disk ({exc}); check the disk Redis writes to "
                "(full?), then restart the worker")
    return f"Redis refused the update: {exc}"


@dataclass(frozen=True)
class ApplyResult:
    status: Literal["applied", "duplicate", "partial"]
    watermark: int


@dataclass
class WindowCounts:
    """Counts and probability sums per sentiment label over a window."""

    counts: dict[str, int] = field(default_factory=dict)
    prob_sums: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, label: str) -> float:
        return self.counts.get(label, 0) / self.total if self.total else 0.0

    def add(self, metric: str, label: str, value: str | bytes) -> None:
        if metric == "n":
            self.counts[label] = self.counts.get(label, 0) + int(value)
        else:
            self.prob_sums[label] = self.prob_sums.get(label, 0.0) + float(value)

    def merge(self, other: WindowCounts) -> None:
        for label, n in other.counts.items():
            self.counts[label] = self.counts.get(label, 0) + n
        for label, p in other.prob_sums.items():
            self.prob_sums[label] = self.prob_sums.get(label, 0.0) + p


def _accumulate(into: defaultdict[tuple[str, str], WindowCounts], bucket: dict[str, str],
                wanted: set[Scope]) -> None:
    """Add one partition's bucket hash (field -> value) to ``into``, for ``wanted`` scopes."""
    for name, value in bucket.items():
        scope, key, metric, label = parse_field(name)
        if scope in wanted:
            into[(scope, key)].add(metric, label, value)


@dataclass(frozen=True)
class PartitionCounts:
    tag: str
    consumed: int
    scored: int
    dead: int
    watermark: int


class TrendStore:
    """Async client for the aggregates. One per worker process."""

    def __init__(self, client: RedisClient, redis: RedisSettings,
                 aggregate: AggregateSettings, *,
                 on_retry: Callable[[], None] | None = None) -> None:
        self._r = client
        # Told of each write retried (the worker's streamer_redis_retries_total).
        self._on_retry = on_retry
        self._cfg = redis
        self._agg = aggregate
        self.keys = Keyspace(redis.key_prefix)
        self._apply = register_script(client, _APPLY)
        self._claim = register_script(client, _CLAIM)
        self._known: set[str] = set()

    @classmethod
    def connect(cls, redis: RedisSettings, aggregate: AggregateSettings, *,
                on_retry: Callable[[], None] | None = None) -> TrendStore:
        try:
            password = redis.secret()
        except ValueError as exc:
            raise AggregateUnavailable(f"{exc}; check STREAMER_REDIS_PASSWORD_FILE") from exc
        if redis.wait_replicas and redis.wait_timeout_ms >= redis.timeout_s * 1000:
            # The WAIT reply would come after the socket gave up on it.
            raise AggregateUnavailable(
                f"STREAMER_REDIS_WAIT_TIMEOUT_MS={redis.wait_timeout_ms} must be below "
                f"STREAMER_REDIS_TIMEOUT_S={redis.timeout_s:g} s")
        tls: dict[str, Any] = {}
        if redis.url.startswith("rediss://"):
            ca = redis.tls_ca_file
            if ca is not None and not ca.is_file():
                raise AggregateUnavailable(
                    f"STREAMER_REDIS_TLS_CA_FILE={ca} is not a readable file")
            tls = {"ssl_ca_certs": str(ca) if ca else None, "ssl_cert_reqs": "required"}
        client = connect(
            redis.url,
            cluster=redis.cluster,
            username=redis.username,
            password=password,
            socket_timeout=redis.timeout_s,
            socket_connect_timeout=redis.timeout_s,
            decode_responses=True,
            **tls,
        )
        return cls(client, redis, aggregate, on_retry=on_retry)

    @property
    def redis(self) -> RedisClient:
        return self._r

    @property
    def bucket_seconds(self) -> int:
        """Width of the event-time buckets this store writes."""
        return self._agg.bucket_seconds

    @property
    def dedup_window_messages(self) -> int:
        """Messages per partition whose event ids are remembered (0: no de-duplication)."""
        return self._agg.dedup_window_messages

    @property
    def bucket_ttl_s(self) -> int:
        """How long a bucket lives in Redis."""
        return self._agg.bucket_ttl_s

    async def close(self) -> None:
        await self._r.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._r.ping())
        except (RedisConnectionError, RedisTimeoutError, OSError):
            return False

    async def check(self) -> None:
        """Raise AggregateUnavailable saying what to fix when Redis cannot be used."""
        where = self._cfg.url.split("@")[-1]  # never echo credentials in a URL
        try:
            await self._r.ping()
        except (AuthenticationError, AuthenticationWrongNumberOfArgsError) as exc:
            if "required" in str(exc).lower():  # NOAUTH: we sent no password at all
                raise AggregateUnavailable(
                    f"Redis at {where} needs a password; set STREAMER_REDIS_PASSWORD") from exc
            raise AggregateUnavailable(
                f"Redis at {where} refused the credentials ({exc}); check "
                "STREAMER_REDIS_USERNAME and STREAMER_REDIS_PASSWORD (or the user in "
                "REDIS_URL)") from exc
        except ResponseError as exc:
            raise AggregateUnavailable(f"Redis at {where} answered: {exc}") from exc
        except RedisClusterException as exc:  # no startup node answered, or not a cluster
            if any(w in str(exc) for w in ("uthentication", "WRONGPASS", "username-password")):
                raise AggregateUnavailable(
                    f"Redis Cluster at {where} refused the login ({exc}); check "
                    "STREAMER_REDIS_USERNAME and STREAMER_REDIS_PASSWORD") from exc
            raise AggregateUnavailable(
                f"Redis Cluster at {where}: {exc}; start it (`streamer stack up "
                "--redis-cluster`) or unset STREAMER_REDIS_CLUSTER", transient=True) from exc
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise AggregateUnavailable(
                    f"Redis at {where}: the server's TLS certificate is not trusted; set "
                    "STREAMER_REDIS_TLS_CA_FILE to the CA that signed it") from exc
            raise AggregateUnavailable(
                f"Redis at {where} did not answer ({exc}); start it with `streamer stack up` "
                "or set REDIS_URL", transient=True) from exc

    # --- writes ----------------------------------------------------------------------
    async def apply(self, delta: PartitionDelta) -> ApplyResult:
        """Apply ``delta`` unless its offsets are at or below the partition's watermark.

        'partial' means the watermark sits inside the delta's offset range (a replay
        that straddles an earlier batch): the caller rebuilds the delta from the
        offsets above the returned watermark and applies that.
        """
        if not delta.offsets:
            raise ValueError("empty delta")
        tag = Keyspace.tag(delta.topic, delta.partition)
        keys = [self.keys.watermark(tag), self.keys.counts(tag)]
        ttl = self._agg.bucket_ttl_s
        args: list[str | int | float] = [delta.first_offset, delta.last_offset, ttl]
        counters = {
            "consumed": len(delta.offsets), "scored": delta.scored, "dead": delta.dead
        }
        args += [len(counters), *[x for kv in counters.items() for x in kv]]
        buckets = sorted(delta.counts.keys() | delta.sums.keys())
        args += [buckets[0], buckets[-1]] if buckets else [-1, -1]
        for start in buckets:
            keys.append(self.keys.bucket(tag, start))
            ints, floats = delta.counts.get(start, {}), delta.sums.get(start, {})
            args += [len(ints), *[x for kv in ints.items() for x in kv]]
            args += [len(floats), *[x for kv in floats.items() for x in (kv[0], repr(kv[1]))]]
        # The first reply: a retry after a WAIT that fell short finds its own writes
        # ("duplicate") and must report what the first attempt did.
        first: list[Any] = []
        await self._with_retry(lambda: self._run(self._apply, keys, args, first))
        status, watermark = first[0]
        if tag not in self._known:
            if self._cfg.wait_replicas:
                await self._with_retry(lambda: self._durable(
                    self.keys.partitions, ("SADD", self.keys.partitions, tag)))
            else:
                await self._with_retry(lambda: _aw(self._r.sadd(self.keys.partitions, tag)))
            self._known.add(tag)
        names: dict[int, Literal["applied", "duplicate", "partial"]] = {
            1: "applied", 0: "duplicate", -1: "partial"
        }
        name = names[int(status)]
        return ApplyResult(name, int(watermark))

    async def _run(self, script: AsyncScript, keys: list[str], args: list[Any],
                   first: list[Any]) -> Any:
        """Run ``script``; with STREAMER_REDIS_WAIT_REPLICAS, acknowledged by that many
        replicas (ReplicasBehind otherwise). The reply lands in ``first`` before the WAIT
        is judged, and only the first reply is kept."""
        if not self._cfg.wait_replicas:
            reply = await script(keys=keys, args=args)
            first[:] = [reply]
            return reply
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return await self._durable(keys[0], command, first)
        except NoScriptError:
            # A fresh server, or a replica promoted since: its script cache is empty.
            # EVAL runs it on the master of the keys' slot and caches it there; a SCRIPT
            # LOAD went to the primaries the client believed in, which right after a
            # fail-over miss the promoted one (redis_client.Script has the story).
            return await self._durable(
                keys[0], ("EVAL", script.script, len(keys), *keys, *args), first)

    async def _durable(self, key: str, command: tuple[Any, ...],
                       first: list[Any] | None = None) -> Any:
        """``command`` on the master of ``key``'s slot, then WAIT for the replicas."""
        try:
            reply = await acknowledged(self._r, key, command,
                                       replicas=self._cfg.wait_replicas,
                                       timeout_ms=self._cfg.wait_timeout_ms)
        except ReplicasBehind as exc:
            if first is not None and not first and exc.reply is not None:
                first.append(exc.reply)
            raise
        if first is not None and not first:
            first.append(reply)
        return reply

    async def first_seen(self, topic: str, partition: int, ids: list[tuple[int, str]]
                         ) -> list[int | None]:
        """Per (offset, event id) of one partition, in offset order: the earlier offset
        at which the id was first seen within the dedup window (a repeat), else None.

        Claims each id for its offset as it goes. The answer for an offset is the same
        however often it is asked (a replay gets the first attempt's answer) as long as
        the id's first offset is still within ``STREAMER_DEDUP_WINDOW_MESSAGES`` of the partition.
        """
        if not ids:
            return []
        key = self.keys.seen_ids(Keyspace.tag(topic, partition))
        agg = self._agg
        args: list[str | int] = [agg.dedup_window_messages, agg.dedup_ttl_s]
        for offset, event_id in ids:
            args += [offset, event_id]
        firsts = await self._with_retry(lambda: self._claim(keys=[key], args=args))
        return [None if int(f) < 0 else int(f) for f in firsts]

    async def _with_retry(self, op: Callable[[], Awaitable[Any]]) -> Any:
        delay = self._cfg.retry_backoff_s
        for attempt in range(1, self._cfg.retry_attempts + 1):
            try:
                return await op()
            except _RETRY_WRITE as exc:
                if isinstance(exc, MovedError) and not is_cluster(self._r):
                    raise AggregateUnavailable(
                        f"Redis answered MOVED ({exc}): it is a Redis Cluster node; set "
                        "STREAMER_REDIS_CLUSTER=true") from exc
                # A fail-over in progress, or replicas behind: the write is idempotent
                # (watermark, claims), so it is re-sent, with its WAIT, once they catch up.
                if attempt == self._cfg.retry_attempts:
                    raise AggregateUnavailable(
                        f"Redis did not acknowledge the write after {attempt} attempts: "
                        f"{exc}", transient=True) from exc
                log.warning("Redis write not acknowledged (attempt %d): %s; retrying in "
                            "%.1fs", attempt, exc, delay)
            except ResponseError as exc:
                # OOM, READONLY, NOSCRIPT-after-flush... are not transient in a useful way
                # except LOADING (restart in progress).
                if "LOADING" not in str(exc) or attempt == self._cfg.retry_attempts:
                    raise AggregateUnavailable(refusal(exc)) from exc
            except AttributeError as exc:
                # redis-py's cluster client (6.4) closes every node's connections when one
                # fails (a master killed), under the commands still in flight on the others
                # (a batch claims its partitions side by side); those then fail on their
                # closed stream ("'NoneType' object has no attribute 'writelines'"). For
                # them it is a lost connection: retried like one, instead of stopping the
                # worker (tests/test_cluster_chaos.py saw it crash and restart).
                if not is_cluster(self._r) or attempt == self._cfg.retry_attempts:
                    raise
                log.warning("Redis connection closed under a command (attempt %d): %s; "
                            "retrying in %.1fs", attempt, exc, delay)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                if attempt == self._cfg.retry_attempts:
                    raise AggregateUnavailable(
                        f"Redis unreachable after {attempt} attempts: {exc}", transient=True
                    ) from exc
                log.warning("Redis unavailable (attempt %d): %s; retrying in %.1fs",
                            attempt, exc, delay)
            if self._on_retry is not None:
                self._on_retry()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._cfg.retry_backoff_max_s)
        raise AssertionError("unreachable")

    # --- reads -----------------------------------------------------------------------
    async def partitions(self) -> list[str]:
        return sorted(await _aw(self._r.smembers(self.keys.partitions)))

    async def partition_counts(self) -> list[PartitionCounts]:
        out = []
        for tag in await self.partitions():
            counts = await _aw(self._r.hgetall(self.keys.counts(tag)))
            wm = await self._r.get(self.keys.watermark(tag))
            out.append(PartitionCounts(
                tag,
                int(counts.get("consumed", 0)),
                int(counts.get("scored", 0)),
                int(counts.get("dead", 0)),
                int(wm) if wm is not None else -1,
            ))
        return out

    async def time_range(self) -> tuple[int, int] | None:
        """First and last bucket start (epoch s) written by any partition."""
        lo, hi = None, None
        for tag in await self.partitions():
            c = await _aw(self._r.hmget(self.keys.counts(tag), ["bmin", "bmax"]))
            if c[0] is not None:
                lo = int(c[0]) if lo is None else min(lo, int(c[0]))
                hi = int(c[1]) if hi is None else max(hi, int(c[1]))
        return None if lo is None or hi is None else (lo, hi)

    def _bucket_starts(self, start_s: float, end_s: float) -> range:
        width = self._agg.bucket_seconds
        first = int(start_s) - int(start_s) % width
        return range(first, int(end_s) + 1, width)  # lazy: a wide span costs nothing here

    async def _stored(self, tags: Iterable[str]) -> set[tuple[str, int]]:
        """(tag, start) of every bucket key Redis holds for ``tags`` (SCAN, in pages):
        as many as the TTL keeps, however far apart their event times lie."""
        wanted = set(tags)
        out: set[tuple[str, int]] = set()  # a set: SCAN may return a key twice
        async for key in self._r.scan_iter(match=self.keys.bucket_pattern,
                                           count=self._cfg.read_page):
            found = self.keys.parse_bucket(key)
            if found is not None and found[0] in wanted:
                out.add(found)
        return out

    async def first_bucket(self, start_s: float, end_s: float) -> int | None:
        """Start of the earliest bucket held in [start_s, end_s] (any partition), else None."""
        starts = [b for _, b in await self._stored(await self.partitions())
                  if start_s <= b <= end_s]
        return min(starts, default=None)

    async def _rows(self, start_s: float, end_s: float, fields: list[str] | None = None
                    ) -> AsyncIterator[tuple[int, Any]]:
        """(bucket start, HGETALL or HMGET ``fields`` of one partition's bucket) over the
        buckets in [start_s, end_s], a page of keys per round trip. A span of at most a page
        of buckets is read by name; a wider one from the keys Redis holds, so the work is
        bounded by what is stored, never by the span (one event of 1987 in a live stream)."""
        tags = await self.partitions()
        page = self._cfg.read_page
        starts = self._bucket_starts(start_s, end_s)
        if len(starts) <= page:
            keys = [(tag, b) for b in starts for tag in tags]
        else:
            first = starts[0]
            keys = sorted(((t, b) for t, b in await self._stored(tags) if first <= b <= end_s),
                          key=lambda tb: (tb[1], tb[0]))
        for i in range(0, len(keys), page):
            chunk = keys[i:i + page]
            pipe = self._r.pipeline(transaction=False)
            for tag, b in chunk:
                if fields is None:
                    pipe.hgetall(self.keys.bucket(tag, b))
                else:
                    pipe.hmget(self.keys.bucket(tag, b), fields)
            for (_, b), row in zip(chunk, await pipe.execute(), strict=True):
                yield b, row

    async def window_all(
        self, start_s: float, end_s: float, scopes: Iterable[Scope] = SCOPES
    ) -> dict[tuple[str, str], WindowCounts]:
        """Every scope key's counts over buckets whose start lies in [start_s, end_s]."""
        wanted = set(scopes)
        out: defaultdict[tuple[str, str], WindowCounts] = defaultdict(WindowCounts)
        async for _, bucket in self._rows(start_s, end_s):
            _accumulate(out, bucket, wanted)
        return dict(out)

    async def buckets(
        self, start_s: float, end_s: float, scopes: Iterable[Scope] = SCOPES
    ) -> dict[int, dict[tuple[str, str], WindowCounts]]:
        """Per bucket start in [start_s, end_s], every scope key's counts (all partitions)."""
        wanted = set(scopes)
        acc: dict[int, defaultdict[tuple[str, str], WindowCounts]] = {}
        async for start, bucket in self._rows(start_s, end_s):
            _accumulate(acc.setdefault(start, defaultdict(WindowCounts)), bucket, wanted)
        return {start: dict(keys) for start, keys in sorted(acc.items()) if keys}

    async def series(
        self, scope: Scope, key: str, start_s: float, end_s: float, labels: Iterable[str]
    ) -> list[tuple[int, WindowCounts]]:
        """Per-bucket counts of one scope key, merged across partitions (for charts)."""

        fields = [field_name(scope, key, "n", lb) for lb in labels]
        by_start = {start: WindowCounts() for start in self._bucket_starts(start_s, end_s)}
        async for start, row in self._rows(start_s, end_s, fields):
            for name, v in zip(fields, row, strict=True):
                if v is not None and start in by_start:
                    by_start[start].add("n", parse_field(name)[3], v)
        return list(by_start.items())
