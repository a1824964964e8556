"""The Redis client of every part of the app: one server or a Redis Cluster, and writes
that replicas acknowledged before a Kafka offset may be committed.

``STREAMER_REDIS_CLUSTER=true`` makes :func:`connect` return redis-py's cluster client
(``redis.asyncio.cluster.RedisCluster``), which finds the other nodes from the one in
``REDIS_URL``, routes each command to the master of its key's hash slot, follows MOVED
and re-reads the topology after a fail-over. Both clients take the same URL schemes
(``rediss://``), credentials and timeouts. A setting, not a guess from the URL: a URL
cannot say whether its server is a cluster node, and asking would cost a round trip
and a permission (``CLUSTER INFO``) at every connect.

**Acknowledged by replicas** (:func:`acknowledged`). Replication is asynchronous: a
master answers a write before any replica has it, and a fail-over can promote a replica
that never got it. ``WAIT n timeout`` blocks until ``n`` replicas acknowledged every
write the *same connection* made, so the write and its WAIT go out together in one
pipeline on one connection to the master of the write's slot. WAIT counts up to the
master's replication offset at that write, so it also covers every earlier write to that
master (the same partition's dedup claims, for one). What it does not give: see
README.md, "Redis".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import PipelineCommand, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoScriptError,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, KeyT

RedisClient: TypeAlias = Redis | RedisCluster

# Errors of a cluster in motion (a fail-over, a slot moving, a node gone): a later
# attempt, once the client has re-read the topology, may well succeed.
CLUSTER_TRANSIENT: tuple[type[Exception], ...] = (
    ClusterDownError, TryAgainError, MovedError, AskError, ClusterError, SlotNotCoveredError,
)


class ReplicasBehind(RedisError):
    """Fewer replicas than ``STREAMER_REDIS_WAIT_REPLICAS`` acknowledged a write in time:
    the write happened on the master but may be lost in a fail-over, so what depends on
    it (an offset commit) must wait; retrying re-runs the idempotent write and the WAIT."""

    def __init__(self, acked: int, wanted: int, timeout_ms: int, reply: Any = None) -> None:
        super().__init__(f"{acked} of {wanted} Redis replica(s) acknowledged the write "
                         f"within {timeout_ms} ms (STREAMER_REDIS_WAIT_REPLICAS)")
        self.acked = acked
        self.wanted = wanted
        self.reply = reply  # what the write itself answered


def connect(url: str, *, cluster: bool, **kwargs: Any) -> RedisClient:
    """A client for ``url``: the cluster client when ``cluster``, else a plain one;
    ``kwargs`` (credentials, timeouts, TLS) go to either."""
    if cluster:
        return RedisCluster.from_url(url, **kwargs)
    return Redis.from_url(url, **kwargs)


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


class Script(AsyncScript):
    """redis-py's script object, with a fallback that also holds on a Redis Cluster after
    a fail-over.

    EVALSHA answers NOSCRIPT when the server holding the keys lacks the script: after a
    restart or SCRIPT FLUSH, and on a cluster after a replica was promoted (script caches
    are not replicated). redis-py then sends SCRIPT LOAD to the primaries the client
    *believes* in and EVALSHA again; right after a fail-over that list still misses the
    promoted replica, the second EVALSHA fails too, and the worker stopped for good
    ("Redis refused the update: No matching script", tests/test_cluster_chaos.py). EVAL
    instead goes where the keys are (the cluster client routes it by key and follows
    MOVED) and caches the script on that very server for the next EVALSHA."""

    async def __call__(self, keys: Sequence[KeyT] | None = None,
                       args: Iterable[EncodableT] | None = None,
                       client: Any = None) -> Any:
        client = self.registered_client if client is None else client
        if isinstance(client, Pipeline) or not isinstance(client, (Redis, RedisCluster)):
            return await super().__call__(keys, args, client)  # a pipeline: redis-py's way
        keys, args = list(keys or []), list(args or [])
        try:
            return await client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.execute_command("EVAL", self.script, len(keys), *keys, *args)


def register_script(client: RedisClient, text: str) -> Script:
    """A Lua script on either client, with :class:`Script`'s NOSCRIPT fallback (EVAL on
    the server that holds the keys)."""
    return Script(cast(Redis, client), text)


async def acknowledged(client: RedisClient, key: str, command: Sequence[EncodableT], *,
                       replicas: int, timeout_ms: int) -> Any:
    """``command`` (every key of it in ``key``'s hash slot), then ``WAIT replicas
    timeout_ms`` on the same connection; its reply, or :class:`ReplicasBehind`.

    Errors of the command itself (NOSCRIPT, OOM, a cluster in motion) raise as they
    would without the WAIT."""
    wait = ("WAIT", replicas, timeout_ms)
    if isinstance(client, RedisCluster):
        reply, acked = await _on_master(client, key, command, wait)
    else:
        pipe = client.pipeline(transaction=False)  # one connection for both
        pipe.execute_command(*command)
        pipe.execute_command(*wait)
        reply, acked = await pipe.execute()
    if int(acked) < replicas:
        raise ReplicasBehind(int(acked), replicas, timeout_ms, reply)
    return reply


async def _on_master(client: RedisCluster, key: str, command: Sequence[EncodableT],
                     wait: Sequence[EncodableT]) -> tuple[Any, Any]:
    """Both commands pipelined on one connection to the master of ``key``'s slot.

    Not the cluster pipeline: it may re-send a redirected command alone (elsewhere than
    its WAIT) and routes a key-less WAIT to every node. A topology change raises here;
    the client then re-reads the topology, and the caller's retry goes to the new master.
    """
    await client.initialize()  # no-op once the topology is known
    node = client.get_node_from_key(key)
    if node is None:
        raise SlotNotCoveredError(f"no master serves the slot of {key!r}")
    commands = [PipelineCommand(0, *command), PipelineCommand(1, *wait)]
    try:
        await node.execute_pipeline(commands)
    except (RedisConnectionError, RedisTimeoutError, OSError):
        await client.aclose()  # as redis-py does: the next command re-reads the topology
        raise
    for cmd in commands:
        if isinstance(cmd.result, (*CLUSTER_TRANSIENT, RedisConnectionError,
                                   RedisTimeoutError)):
            await client.aclose()
        if isinstance(cmd.result, BaseException):
            raise cmd.result
    return commands[0].result, commands[1].result
