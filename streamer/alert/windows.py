"""Event-time plumbing in Redis: partition progress -> watermark, closed buckets, evidence.

Keys (``streamer/keys.py`` builds them): ``progress`` (hash "<topic>:<partition>" ->
newest event time applied, ms) and ``seen`` (hash "<topic>:<partition>" -> wall clock of
its last advance) under the alerts hash tag, and one ``evidence`` sorted set of recent
negative messages per scope key (score: event ms).

The **watermark** is the oldest newest-event-time over the partitions still moving,
minus the allowed lateness: every partition has delivered (and Redis has applied)
everything before it, so the buckets below it are final and the same in a live run
and in a replay at any speed. A partition that has not advanced for
``STREAMER_ALERT_IDLE_PARTITION_S`` (wall clock) stops holding the watermark back, so a quiet
partition cannot stall detection; when every partition is idle the newest time wins.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.exceptions import NoScriptError

from streamer.aggregate.scopes import event_scope_keys
from streamer.aggregate.store import TrendStore
from streamer.detect.core import ScopeKey
from streamer.keys import ALERT_SCOPES, Keyspace, is_label, parse_field
from streamer.redis_client import RedisClient, register_script
from streamer.schemas import ScoredEvent

_PROGRESS = """
local now = ARGV[1]
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local tag = ARGV[3 + 2 * i]
  local ms = tonumber(ARGV[4 + 2 * i])
  local cur = tonumber(redis.call('HGET', KEYS[1], tag) or '-1')
  if ms > cur then
    redis.call('HSET', KEYS[1], tag, ARGV[4 + 2 * i])
    redis.call('HSET', KEYS[2], tag, now)
  end
end
return n
"""


@dataclass(frozen=True)
class EvidenceItem:
    event_id: str
    event_ms: float
    source: str
    kind: str
    snippet: str
    negative_prob: float
    produced_ms: float | None = None  # the Kafka record timestamp


class EventTime:
    """Partition progress, the watermark, closed-bucket reads and evidence."""

    def __init__(self, store: TrendStore, *, lateness_s: float, idle_s: float,
                 scopes: Iterable[str], evidence_retention_s: float, evidence_ttl_s: int,
                 evidence_per_key: int = 500) -> None:
        self.store = store
        self.r: RedisClient = store.redis
        self.keys = store.keys
        self.progress_key = self.keys.alert("progress")
        self.seen_key = self.keys.alert("seen")
        self.lateness_ms = lateness_s * 1000.0
        self.idle_ms = idle_s * 1000.0
        self.scopes = tuple(s for s in scopes if s in ALERT_SCOPES)
        self.retention_ms = evidence_retention_s * 1000.0
        self.evidence_ttl_s = evidence_ttl_s
        self.evidence_per_key = evidence_per_key
        self._progress = register_script(self.r, _PROGRESS)
        self.expected: frozenset[str] = frozenset()
        self._waiting_since_ms: float | None = None

    def expect(self, tags: Iterable[str], now_ms: float) -> None:
        """The input partitions (``topic:partition``) the watermark waits for at start."""
        self.expected = frozenset(tags)
        self._waiting_since_ms = now_ms

    def evidence_key(self, scope: str, key: str) -> str:
        return self.keys.evidence(scope, key)

    # --- writes (per batch) ----------------------------------------------------------
    async def observe(self, events: Sequence[ScoredEvent], now_ms: float) -> None:
        """Record partition progress and the negative messages, in one round trip."""
        newest: dict[str, float] = {}
        by_key: dict[ScopeKey, list[tuple[float, bytes]]] = defaultdict(list)
        for ev in events:
            ms = ev.event_time.timestamp() * 1000.0
            tag = Keyspace.tag(ev.origin.topic, ev.origin.partition)
            newest[tag] = max(newest.get(tag, ms), ms)
            if ev.sentiment.label != "negative":
                continue
            member = orjson.dumps({
                "id": ev.id, "t": ms, "src": ev.source, "k": ev.kind,
                "s": ev.snippet, "p": ev.sentiment.probs.get("negative", 0.0),
                "pt": ev.stamps.produced,
            })
            for scope, key in self._scope_keys(ev):
                by_key[(scope, key)].append((ms, member))
        if not newest:
            return
        pipe = self.r.pipeline(transaction=False)
        for (scope, key), items in by_key.items():
            name = self.evidence_key(scope, key)
            pipe.zadd(name, {m: ms for ms, m in items})
            horizon = max(ms for ms, _ in items) - self.retention_ms
            pipe.zremrangebyscore(name, "-inf", f"({horizon}")
            # Bounded even when a scope key floods: keep the newest.
            pipe.zremrangebyrank(name, 0, -self.evidence_per_key - 1)
            pipe.expire(name, self.evidence_ttl_s)
        args: list[Any] = [int(now_ms), len(newest)]
        for tag, ms in newest.items():
            args += [tag, int(ms)]
        keys = [self.progress_key, self.seen_key]
        # EVALSHA queued by hand: a Script object on a pipeline makes every execute() ask
        # SCRIPT EXISTS first, a second round trip per batch. As a raw command: the
        # cluster pipeline blocks its evalsha() method but routes EVALSHA by its keys.
        pipe.execute_command("EVALSHA", self._progress.sha, len(keys), *keys, *args)
        try:
            await pipe.execute()
        except NoScriptError:
            # Redis lost its script cache (a restart, SCRIPT FLUSH). The pipeline's other
            # commands ran and are idempotent; the Script call loads it and runs it once.
            await self._progress(keys=keys, args=args)

    def _scope_keys(self, ev: ScoredEvent) -> list[ScopeKey]:
        """The watched scope keys ``ev`` counts under, as the buckets count it ("all" has
        no evidence: it is the detector's internal prior)."""
        return [(scope, key) for scope, key in event_scope_keys(ev)
                if scope in self.scopes and is_label(key)]

    # --- the watermark ----------------------------------------------------------------
    async def watermark_ms(self, now_ms: float) -> float | None:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.progress_key)
        pipe.hgetall(self.seen_key)
        progress_raw, seen_raw = await pipe.execute()
        return watermark(progress_raw, seen_raw, now_ms, self.idle_ms, self.lateness_ms,
                         self.expected, self._waiting_since_ms)

    # --- closed buckets --------------------------------------------------------------
    async def read_buckets(
        self, starts: Sequence[int]
    ) -> dict[int, dict[ScopeKey, tuple[int, int]]]:
        """Per bucket start: (messages, negatives) per scope key, merged over partitions."""
        tags = await self.store.partitions()
        pipe = self.r.pipeline(transaction=False)
        for start in starts:
            for tag in tags:
                pipe.hgetall(self.store.keys.bucket(tag, start))
        rows = await pipe.execute() if starts and tags else []
        wanted = {"all", *self.scopes}
        out: dict[int, dict[ScopeKey, tuple[int, int]]] = {}
        for i, start in enumerate(starts):
            acc: dict[ScopeKey, list[int]] = defaultdict(lambda: [0, 0])
            for bucket in rows[i * len(tags):(i + 1) * len(tags)]:
                for name, value in bucket.items():
                    scope, key, metric, label = parse_field(name)
                    if metric != "n" or scope not in wanted:
                        continue
                    c = acc[(scope, key)]
                    c[0] += int(value)
                    if label == "negative":
                        c[1] += int(value)
            out[start] = {k: (c[0], c[1]) for k, c in acc.items()}
        return out

    # --- evidence -----------------------------------------------------------------------
    async def evidence(self, scope: str, key: str, start_ms: float,
                       end_ms: float) -> list[EvidenceItem]:
        raw = await self.r.zrangebyscore(self.evidence_key(scope, key), start_ms, f"({end_ms}")
        out = []
        for member in raw:
            d = orjson.loads(member)
            pt = d.get("pt")
            out.append(EvidenceItem(d["id"], float(d["t"]), d["src"], d["k"], d["s"],
                                    float(d["p"]), None if pt is None else float(pt)))
        return out


def watermark(progress: dict[str, str], seen: dict[str, str], now_ms: float, idle_ms: float,
              lateness_ms: float, expected: Iterable[str] = (),
              waiting_since_ms: float | None = None) -> float | None:
    """Min newest-event-time over partitions that moved within ``idle_ms``, less lateness.

    ``expected`` partitions that have not reported yet hold the watermark back (None)
    until ``idle_ms`` after ``waiting_since_ms``: at start-up a bucket must not close
    before every partition had the chance to deliver its part of it.
    """
    missing = set(expected) - progress.keys()
    if missing and (waiting_since_ms is None or now_ms - waiting_since_ms <= idle_ms):
        return None
    if not progress:
        return None
    times = {tag: float(v) for tag, v in progress.items()}
    moving = [t for tag, t in times.items() if now_ms - float(seen.get(tag, 0)) <= idle_ms]
    base = min(moving) if moving else max(times.values())
    return base - lateness_ms


def top_evidence(items: Iterable[EvidenceItem], k: int) -> list[EvidenceItem]:
    """The k most negative messages (ties: earliest first), then in event-time order.

    A story re-sent on the wire (the same text under another id) counts once: its
    earliest copy stands for it."""
    ranked = sorted(items, key=lambda e: (-e.negative_prob, e.event_ms, e.event_id))
    first: dict[str, EvidenceItem] = {}
    for e in sorted(ranked, key=lambda e: (e.event_ms, e.event_id)):
        first.setdefault(_story(e.snippet), e)
    kept = {id(e) for e in first.values()}
    best = [e for e in ranked if id(e) in kept][:k]
    return sorted(best, key=lambda e: (e.event_ms, e.event_id))


def _story(snippet: str) -> str:
    """What makes two snippets the same story: letters and digits, case folded."""
    return "".join(ch for ch in snippet.casefold() if ch.isalnum())
