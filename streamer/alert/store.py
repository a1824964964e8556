"""Alert state in Redis: detector state, the evaluation cursor, claims and the outbox.

Every key shares the hash tag ``{alerts}`` (one Redis Cluster slot), so the commit
below is one atomic Lua script:

    <p>:{alerts}:meta            cursor (last bucket evaluated), origin (first bucket)
    <p>:{alerts}:state           "<scope>|<key>" -> KeyState JSON
    <p>:{alerts}:claim:<id>      "pending" | "delivered"; set once, expires after a week
    <p>:{alerts}:outbox:<sink>   alert id -> AlertRecord JSON, until <sink> acknowledged it
    <p>:{alerts}:order:<sink>    alert id by claim sequence: the delivery order
    <p>:{alerts}:seq             claim sequence
    <p>:{alerts}:lease           the worker currently delivering (a short lease)
    <p>:{alerts}:recent          the newest claimed alerts, newest first (capped; dashboard)

**Atomic claim.** Workers evaluate optimistically: read the cursor and states, step
the pure detector over the newly closed buckets, then commit *only if the cursor has
not moved*: states, cursor and the alerts (claim key set NX + outbox entry) in one
script. Two workers racing on the same buckets compute the same decisions; one commit
wins and the other is discarded, so no alert is emitted twice, and alert ids are
deterministic so even a claim replayed by hand is refused by its claim key.

**Never lost.** A claimed alert sits in the outbox until its sink acknowledged it;
a crash anywhere in between leaves it there for the next delivery pass (any worker).
Delivery is therefore at least once: consumers drop repeats by ``alert_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import ValidationError

from streamer.detect.core import KeyState, ScopeKey
from streamer.keys import Keyspace, parse_scope_field, scope_field
from streamer.redis_client import RedisClient, register_script
from streamer.schemas.alerts import AlertRecord

Sink = Literal["kafka", "webhook"]
RECENT_MAX = 200  # claimed alerts kept for the dashboard, newest first
RECENT_EVIDENCE = 3  # evidence messages kept per alert in that list

_COMMIT = """
local cur = redis.call('HGET', KEYS[1], 'cursor') or ''
if cur ~= ARGV[1] then return {-1, 0} end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2], 'origin', ARGV[3])
local i = 4
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]); i = i + 2
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HDEL', KEYS[2], ARGV[i]); i = i + 1
end
local ttl = ARGV[i]; local webhook = ARGV[i + 1] == '1'
local max_webhook = tonumber(ARGV[i + 2]); local recent_max = tonumber(ARGV[i + 3])
i = i + 4
n = tonumber(ARGV[i]); i = i + 1
local out = {0, 0}
for a = 1, n do
  local id, rec, brief = ARGV[i], ARGV[i + 1], ARGV[i + 2]; i = i + 3
  if redis.call('SET', KEYS[8 + a], 'pending', 'NX', 'EX', ttl) then
    local seq = redis.call('INCR', KEYS[7])
    redis.call('HSET', KEYS[3], id, rec)
    redis.call('ZADD', KEYS[4], seq, id)
    if webhook then
      if redis.call('HLEN', KEYS[5]) < max_webhook then
        redis.call('HSET', KEYS[5], id, rec)
        redis.call('ZADD', KEYS[6], seq, id)
      else
        out[2] = out[2] + 1
      end
    end
    redis.call('LPUSH', KEYS[8], brief)
    out[1] = out[1] + 1
    out[#out + 1] = id
  end
end
if out[1] > 0 then
  redis.call('LTRIM', KEYS[8], 0, recent_max - 1)
  redis.call('EXPIRE', KEYS[8], ttl)
end
return out
"""

_DELIVERED = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[3], 'delivered', 'KEEPTTL')
end
return 1
"""

_LEASE = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_SNAPSHOT = """#!lua flags=no-writes
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}
"""


def _pairs(flat: list[str]) -> dict[str, str]:
    """A hash as HGETALL answers inside a script (field, value, ...) -> a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


@dataclass(frozen=True)
class Snapshot:
    cursor: int | None
    origin: int | None
    states: dict[ScopeKey, KeyState]


@dataclass(frozen=True)
class CommitResult:
    committed: bool
    claimed: tuple[str, ...] = ()  # alert ids this commit claimed (others were claimed before)
    webhook_dropped: int = 0  # claimed, but the webhook outbox was full


class AlertStore:
    def __init__(self, client: RedisClient, prefix: str, *, claim_ttl_s: int) -> None:
        self.r = client
        self.keys = keys = Keyspace(prefix)
        self.meta = keys.alert("meta")
        self.state = keys.alert("state")
        self.seq = keys.alert("seq")
        self.lease_key = keys.alert("lease")
        self.recent_key = keys.alert("recent")
        self.claim_ttl_s = claim_ttl_s
        self._commit = register_script(client, _COMMIT)
        self._delivered = register_script(client, _DELIVERED)
        self._lease = register_script(client, _LEASE)
        self._snapshot = register_script(client, _SNAPSHOT)

    def outbox(self, sink: Sink) -> str:
        return self.keys.outbox(sink)

    def order(self, sink: Sink) -> str:
        return self.keys.order(sink)

    def claim_key(self, alert_id: str) -> str:
        return self.keys.claim(alert_id)

    # --- detector state -----------------------------------------------------------------
    async def cursor(self) -> int | None:
        value = await self.r.hget(self.meta, "cursor")  # type: ignore[misc]
        return int(value) if value not in (None, "") else None

    async def snapshot(self) -> Snapshot:
        # Cursor and states from one moment: one script, not MULTI (redis-py 6.4's async
        # cluster pipeline in a transaction breaks on HGETALL replies).
        meta_raw, state_raw = await self._snapshot(keys=[self.meta, self.state])
        meta, raw = _pairs(meta_raw), _pairs(state_raw)
        states = {parse_scope_field(k): KeyState.model_validate_json(v) for k, v in raw.items()}
        cursor, origin = meta.get("cursor"), meta.get("origin")
        return Snapshot(
            int(cursor) if cursor not in (None, "") else None,
            int(origin) if origin not in (None, "") else None,
            states,
        )

    async def commit(
        self,
        *,
        expected_cursor: int | None,
        cursor: int,
        origin: int,
        changed: Mapping[ScopeKey, KeyState],
        removed: Iterable[ScopeKey],
        alerts: list[AlertRecord],
        webhook: bool,
        webhook_max_pending: int,
    ) -> CommitResult:
        removed = list(removed)
        args: list[Any] = ["" if expected_cursor is None else str(expected_cursor),
                           str(cursor), str(origin), len(changed)]
        for key, st in changed.items():
            args += [scope_field(*key), st.model_dump_json(exclude_defaults=True)]
        args += [len(removed), *[scope_field(*k) for k in removed]]
        args += [self.claim_ttl_s, "1" if webhook else "0", webhook_max_pending, RECENT_MAX,
                 len(alerts)]
        for rec in alerts:
            # The recent list keeps a short copy: a few evidence messages are enough to read.
            brief = rec.model_copy(update={"evidence": rec.evidence[:RECENT_EVIDENCE]})
            args += [rec.alert_id, rec.model_dump_json(), brief.model_dump_json()]
        keys = [self.meta, self.state, self.outbox("kafka"), self.order("kafka"),
                self.outbox("webhook"), self.order("webhook"), self.seq, self.recent_key,
                *[self.claim_key(rec.alert_id) for rec in alerts]]
        status, dropped, *ids = await self._commit(keys=keys, args=args)
        if int(status) < 0:
            return CommitResult(False)
        return CommitResult(True, tuple(str(i) for i in ids), int(dropped))

    # --- outbox -------------------------------------------------------------------------
    async def pending(self, sink: Sink, limit: int = 100) -> list[AlertRecord]:
        """Undelivered alerts for ``sink``, in claim order."""
        ids = await self.r.zrange(self.order(sink), 0, limit - 1)
        if not ids:
            return []
        values = await self.r.hmget(self.outbox(sink), ids)  # type: ignore[misc]
        out = []
        for alert_id, value in zip(ids, values, strict=True):
            if value is None:  # delivered meanwhile by another worker
                await self.r.zrem(self.order(sink), alert_id)
                continue
            out.append(AlertRecord.model_validate_json(value))
        return out

    async def pending_count(self, sink: Sink) -> int:
        return int(await self.r.hlen(self.outbox(sink)))  # type: ignore[misc]

    async def delivered(self, sink: Sink, alert_id: str) -> None:
        # The claim key records delivery to the alerts topic (the record of truth).
        await self._delivered(
            keys=[self.outbox(sink), self.order(sink), self.claim_key(alert_id)],
            args=[alert_id, "1" if sink == "kafka" else "0"],
        )

    async def recent(self, limit: int = 50) -> list[AlertRecord]:
        """The newest claimed alerts, newest first (evidence cut to a few messages)."""
        raw = await self.r.lrange(self.recent_key, 0, max(0, limit - 1))  # type: ignore[misc]
        out = []
        for value in raw:
            try:
                out.append(AlertRecord.model_validate_json(value))
            except ValidationError:
                continue  # written by another schema version: not for this reader
        return out

    async def claim_status(self, alert_id: str) -> str | None:
        return cast(str | None, await self.r.get(self.claim_key(alert_id)))

    async def lease(self, holder: str, ttl_ms: int) -> bool:
        """Take or renew the delivery lease: one worker at a time sends, in order."""
        return bool(await self._lease(keys=[self.lease_key], args=[holder, ttl_ms]))
