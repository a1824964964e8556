"""A local Redis Cluster from Debian's ``redis-server``: 3 masters + 3 replicas, no Docker.

Layout (``<data_dir>/redis-cluster``), one folder per node, named by its port:
  <port>/redis.conf   the node's whole configuration (0600: it may hold the password)
  <port>/nodes.conf   the cluster's view, kept by the node itself (``cluster-config-file``)
  <port>/appendonlydir/  AOF (``appendonly yes``, ``appendfsync everysec``)
  <port>/redis.log    server output;  <port>/redis.pid
  <data_dir>/tls/     CA + server certificate when REDIS_URL is rediss:// (TLS only,
                      also between the nodes: cluster bus and replication)

Ports ``STREAMER_REDIS_CLUSTER_PORT`` + 0..5; each node's cluster bus 10000 above its
port (Redis's default). The first start creates the cluster with ``redis-cli --cluster
create ... --cluster-replicas 1``; later starts bring the same nodes back with their
data and ``nodes.conf``, and they find each other again. The fault tests kill
(SIGKILL), pause (SIGSTOP) and restart single nodes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import redis
from pydantic import BaseModel
from redis.crc import key_slot

from streamer.devstack._proc import (
    StackError,
    TrackedProcess,
    file_lock,
    port_in_use,
    rss_mb,
    spawn_detached,
    tail,
    terminate,
)
from streamer.devstack.redis_server import LocalRedis, auth_config, quoted
from streamer.devstack.tls import ensure_server_tls
from streamer.settings import Settings

NODES = 6  # 3 masters, each with one replica
MASTERS = 3
BUS_OFFSET = 10_000  # Redis's default cluster bus port: the client port + 10000
_MARKER = "redis-server"
_STOP_GRACE_S = 20.0


class ClusterNodeStatus(BaseModel):
    port: int
    role: Literal["master", "replica", "unknown"]
    master_port: int | None  # a replica's master
    slots: int  # hash slots it serves (masters)
    pid: int | None
    running: bool
    paused: bool  # stopped by SIGSTOP (state T)
    rss_mb: float | None


class ClusterStatus(BaseModel):
    url: str
    state: str | None  # cluster_state of the first node that answered: ok | fail
    data_dir: Path
    nodes: list[ClusterNodeStatus]

    @property
    def rss_mb(self) -> float:
        """Resident memory of every running node together."""
        return round(sum(n.rss_mb or 0.0 for n in self.nodes), 1)


class _Node(TrackedProcess):
    """One redis-server of the cluster, known by its pid file."""

    _cmdline_marker = _MARKER

    def __init__(self, root: Path, port: int) -> None:
        self.port = port
        self.dir = root / str(port)
        self.pid_file = self.dir / "redis.pid"
        self.log_file = self.dir / "redis.log"
        self.conf_file = self.dir / "redis.conf"
        self._child: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        return self._pid()

    def signal(self, sig: signal.Signals) -> None:
        self._signal(sig)

    def spawn(self, binary: str) -> None:
        self._child = spawn_detached([binary, str(self.conf_file)], cwd=self.dir,
                                     log_file=self.log_file)
        self.pid_file.write_text(f"{self._child.pid}\n")

    def stop(self, grace_s: float = _STOP_GRACE_S) -> None:
        pid = self._pid()
        if pid is not None:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)  # a paused node cannot act on SIGTERM
            terminate(pid, grace_s=grace_s, cmdline_marker=_MARKER, child=self._child)
            if self._pid() is not None:
                raise StackError(f"redis-server :{self.port} (pid {pid}) did not stop")
        self.pid_file.unlink(missing_ok=True)
        self._child = None


def _proc_state(pid: int) -> tuple[str | None, float | None]:
    """(state letter, RSS in MB) of a process, from /proc (None where unreadable)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None, None
    return state, rss_mb(pid)


class LocalRedisCluster:
    """Six local redis-server nodes in cluster mode on 127.0.0.1."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.paths.data_dir / "redis-cluster"
        base = settings.stack.redis_cluster_port
        self.ports = [base + i for i in range(NODES)]
        self.nodes = {port: _Node(self.root, port) for port in self.ports}

    @property
    def tls(self) -> bool:
        """TLS only, between clients and nodes and between the nodes (REDIS_URL rediss://)."""
        return self.settings.redis.url.startswith("rediss://")

    @property
    def url(self) -> str:
        """The first node: the cluster client finds the others from any one."""
        return self.node_url(self.ports[0])

    @property
    def urls(self) -> list[str]:
        return [self.node_url(p) for p in self.ports]

    def node_url(self, port: int) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{port}/0"

    # --- configuration ---------------------------------------------------------------

    def _config(self, node: _Node) -> str:
        s = self.settings
        lines = [
            "bind 127.0.0.1",
            f"dir {node.dir}",
            "daemonize no",  # stays our child; logs to stdout -> redis.log
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {s.stack.redis_cluster_node_timeout_ms}",
            f"cluster-port {node.port + BUS_OFFSET}",
            # A replica that lost touch with its master for long may still take over: on
            # a dev box, availability over the last few writes (WAIT guards what counts).
            "cluster-replica-validity-factor 0",
            "appendonly yes",
            "appendfsync everysec",
            # A replica (re)joining gets its full sync at once, not 5 s later (Redis 7's
            # default), since writers that WAIT for it are held up until then.
            "repl-diskless-sync-delay 0",
        ]
        if self.tls:
            tls = ensure_server_tls(s.paths.data_dir / "tls", "redis")
            lines += [
                "port 0",
                f"tls-port {node.port}",
                f"tls-cert-file {tls.cert_file}",
                f"tls-key-file {tls.key_file}",
                f"tls-ca-cert-file {tls.ca_file}",
                "tls-auth-clients no",  # clients check the server, not vice versa
                "tls-cluster yes",  # the bus and replication speak TLS too
                "tls-replication yes",
            ]
        else:
            lines.append(f"port {node.port}")
        auth = auth_config(s.redis)
        if auth:
            # Replicas log in to their master like any client.
            if s.redis.username:
                lines.append(f"masteruser {s.redis.username}")
            lines.append(f"masterauth {quoted(s.redis.secret() or '')}")
        return "\n".join(lines) + "\n" + auth

    def _write_config(self, node: _Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        node.conf_file.touch(mode=0o600, exist_ok=True)
        node.conf_file.chmod(0o600)
        node.conf_file.write_text(self._config(node))

    def _client(self, port: int, timeout_s: float) -> redis.Redis:
        tls: dict[str, object] = {}
        if self.tls:
            ca = ensure_server_tls(self.settings.paths.data_dir / "tls", "redis").ca_file
            tls = {"ssl": True, "ssl_ca_certs": str(ca)}
        return redis.Redis(
            host="127.0.0.1", port=port,
            username=self.settings.redis.username,
            password=self.settings.redis.secret(),
            socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            decode_responses=True,
            **tls,  # type: ignore[arg-type]
        )  # fmt: skip

    def _ask(self, port: int, *command: str, timeout_s: float = 2.0) -> str | None:
        """One command to one node; None when it does not answer."""
        client = self._client(port, timeout_s)
        try:
            return str(client.execute_command(*command))
        except (redis.RedisError, OSError):
            return None
        finally:
            client.close()

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> list[str]:
        """Start every node (or find it running), create the cluster on first start, and
        return the nodes' URLs (the first is enough for a client) once every slot is
        served and every master has its replica in sync."""
        timeout = self.settings.stack.stack_start_timeout_s
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / ".lock"):
            binary = LocalRedis(self.settings).ensure_installed()
            for node in self.nodes.values():
                self._start_node(node, binary)
            for node in self.nodes.values():
                self._wait_answers(node, timeout)
            if self._unformed():
                self._create(timeout)
            self._wait_ok(timeout)
            self.wait_replicated(timeout)  # a WAIT for a replica succeeds from now on
        return self.urls

    def _start_node(self, node: _Node, binary: str) -> None:
        if node.is_running():
            return
        node.pid_file.unlink(missing_ok=True)  # stale
        for port in (node.port, node.port + BUS_OFFSET):
            if port_in_use(port):
                raise StackError(
                    f"port 127.0.0.1:{port} is already in use by another program; stop it "
                    "or set STREAMER_REDIS_CLUSTER_PORT (six ports from it, and each + 10000)."
                )
        self._write_config(node)
        node.spawn(binary)

    def _wait_answers(self, node: _Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._ask(node.port, "PING", timeout_s=1.0) != "True":
            if not node.is_running():
                raise StackError(f"redis-server :{node.port} exited during start-up.\n"
                                 f"{tail([node.log_file], 30)}")
            if time.monotonic() >= deadline:
                raise StackError(f"redis-server :{node.port} did not answer PING within "
                                 f"{timeout:.0f}s.\n{tail([node.log_file], 30)}")
            time.sleep(0.05)

    def _unformed(self) -> bool:
        """No node knows another yet: the cluster was never created."""
        for port in self.ports:
            info = self._ask(port, "CLUSTER", "INFO") or ""
            if "cluster_known_nodes:1\r" not in info and "cluster_known_nodes:1\n" not in info:
                return False
        return True

    def _cli(self) -> list[str]:
        binary = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        if not Path(binary).is_file():
            raise StackError("redis-cli not found (Debian: apt-get install -y redis-tools)")
        argv = [binary]
        if self.tls:
            ca = ensure_server_tls(self.settings.paths.data_dir / "tls", "redis").ca_file
            argv += ["--tls", "--cacert", str(ca)]
        if self.settings.redis.username:
            argv += ["--user", self.settings.redis.username]
        return argv

    def _create(self, timeout: float) -> None:
        env = dict(os.environ)
        password = self.settings.redis.secret()
        if password:
            env["REDISCLI_AUTH"] = password  # off the command line, out of ``ps``
        argv = [*self._cli(), "--cluster", "create",
                *[f"127.0.0.1:{p}" for p in self.ports],
                "--cluster-replicas", str(NODES // MASTERS - 1), "--cluster-yes"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"redis-cli --cluster create took over {timeout:.0f}s") from exc
        if proc.returncode != 0:
            raise StackError("redis-cli --cluster create failed (exit "
                             f"{proc.returncode}):\n" + (proc.stdout + proc.stderr)[-3000:])

    def _wait_ok(self, timeout: float) -> None:
        """Every node says cluster_state:ok and knows all six: slots all served."""
        deadline = time.monotonic() + timeout
        while True:
            infos = [self._ask(p, "CLUSTER", "INFO") or "" for p in self.ports]
            if all("cluster_state:ok" in i and f"cluster_known_nodes:{NODES}" in i
                   for i in infos):
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"the Redis Cluster on ports {self.ports[0]}-{self.ports[-1]} is not ok "
                    f"after {timeout:.0f}s.\n"
                    + tail([n.log_file for n in self.nodes.values()], 8))
            time.sleep(0.2)

    def wait_ok(self, timeout_s: float | None = None) -> None:
        """Block until every node reports the cluster ok (after a fault, a restart)."""
        self._wait_ok(timeout_s or self.settings.stack.stack_start_timeout_s)

    def linked_replicas(self) -> list[int]:
        """Ports of the replicas whose link to their master is up (they replicate)."""
        out = []
        for port in self.ports:
            client = self._client(port, 1.0)
            try:
                info: dict[str, Any] = client.info("replication")  # type: ignore[assignment]
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                out.append(port)
        return out

    def wait_replicated(self, timeout_s: float | None = None) -> None:
        """Block until every master has a replica linked to it (after a fault)."""
        timeout = timeout_s or self.settings.stack.stack_start_timeout_s
        deadline = time.monotonic() + timeout
        while len(self.linked_replicas()) < NODES - MASTERS:
            if time.monotonic() >= deadline:
                raise StackError(f"the replicas did not all link to a master in {timeout:.0f}s")
            time.sleep(0.2)

    def exists(self) -> bool:
        """Started at least once here (its folder is there): the stack commands show and
        stop it whatever STREAMER_REDIS_CLUSTER says now."""
        return self.root.is_dir()

    def is_running(self) -> bool:
        """Any node runs."""
        return any(node.is_running() for node in self.nodes.values())

    def stop(self) -> None:
        """SIGTERM every node (each flushes its AOF), SIGKILL any that is stuck."""
        if not self.root.exists():
            return
        with file_lock(self.root / ".lock"):
            errors = []
            for node in self.nodes.values():
                try:
                    node.stop()
                except StackError as exc:
                    errors.append(str(exc))
            if errors:
                raise StackError("; ".join(errors))

    def status(self) -> ClusterStatus:
        view = self._topology()
        state = None
        for port in self.ports:
            info = self._ask(port, "CLUSTER", "INFO", timeout_s=1.0)
            if info is not None:
                state = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                              if line.startswith("cluster_state:")), None)
                break
        nodes = []
        for port, node in self.nodes.items():
            pid = node.pid()
            proc_state, rss = _proc_state(pid) if pid is not None else (None, None)
            v = view.get(port)
            nodes.append(ClusterNodeStatus(
                port=port, role=v.role if v else "unknown", master_port=v and v.master_port,
                slots=v.slots if v else 0, pid=pid,
                running=pid is not None, paused=proc_state == "T", rss_mb=rss))
        return ClusterStatus(url=self.url, state=state, data_dir=self.root, nodes=nodes)

    # --- the topology ----------------------------------------------------------------

    def _topology(self) -> dict[int, _View]:
        """port -> its role, master, slots and health: what each node that answers says of
        itself (gossip may not have told the others yet), else what the others say (a
        node that is down appears flagged fail)."""
        own: dict[int, _View] = {}
        others: dict[int, _View] = {}
        for port in self.ports:
            text = self._ask(port, "CLUSTER", "NODES", timeout_s=1.0)
            if not text:
                continue
            for p, (view, myself) in _parse_nodes(text).items():
                if myself:
                    own[p] = view
                else:
                    others.setdefault(p, view)
        return {**others, **own}

    def masters(self) -> list[int]:
        """Ports of the live masters serving slots now."""
        return sorted(p for p, v in self._topology().items()
                      if v.role == "master" and v.ranges and not v.failed)

    def master_for(self, key: str) -> int:
        """Port of the live master serving ``key``'s hash slot now."""
        slot = key_slot(key.encode())
        for port, v in self._topology().items():
            if v.role == "master" and not v.failed and any(lo <= slot <= hi
                                                           for lo, hi in v.ranges):
                return port
        raise StackError(f"no live master serves slot {slot} (of {key!r})")

    def replicas_of(self, master_port: int) -> list[int]:
        """Ports of the replicas that follow ``master_port`` now."""
        return sorted(p for p, v in self._topology().items()
                      if v.role == "replica" and v.master_port == master_port)

    # --- faults, per node ------------------------------------------------------------

    def _node(self, port: int) -> _Node:
        try:
            return self.nodes[port]
        except KeyError:
            raise StackError(f"no cluster node on port {port} (ports {self.ports})") from None

    def kill(self, port: int) -> None:
        """SIGKILL one node: no AOF flush, no goodbye to the cluster."""
        node = self._node(port)
        pid = node.pid()
        if pid is None:
            raise StackError(f"redis-server :{port} is not running")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while node.is_running() and time.monotonic() < deadline:
            time.sleep(0.02)

    def pause(self, port: int) -> None:
        """SIGSTOP one node: its sockets stay open and nothing answers."""
        self._node(port).signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self._node(port).signal(signal.SIGCONT)

    def restart(self, port: int) -> None:
        """Start a node that was killed or stopped again, with the data and cluster view
        it had; it rejoins (a former master as a replica of whoever took its slots)."""
        node = self._node(port)
        if node.is_running():
            node.stop()
        node.spawn(LocalRedis(self.settings).ensure_installed())
        self._wait_answers(node, self.settings.stack.stack_start_timeout_s)


@dataclass(frozen=True)
class _View:
    role: Literal["master", "replica"]
    master_port: int | None  # a replica's master
    ranges: tuple[tuple[int, int], ...]  # slots served (a master)
    failed: bool  # flagged fail (or fail?) by the node asked

    @property
    def slots(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)


def _parse_nodes(text: str) -> dict[int, tuple[_View, bool]]:
    """CLUSTER NODES -> port -> (its role, master, slots and health; whether it is the
    node that answered)."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    port_of = {r[0]: int(r[1].split("@")[0].rsplit(":", 1)[1]) for r in rows}
    out: dict[int, tuple[_View, bool]] = {}
    for r in rows:
        flags = r[2].split(",")
        failed = "fail" in flags or "fail?" in flags
        if "master" in flags:
            ranges = []
            for part in r[8:]:
                if not part.startswith("["):  # "[slot->-node]": a slot being migrated
                    lo, _, hi = part.partition("-")
                    ranges.append((int(lo), int(hi or lo)))
            view = _View("master", None, tuple(ranges), failed)
        else:
            view = _View("replica", port_of.get(r[3]), (), failed)
        out[port_of[r[0]]] = (view, "myself" in flags)
    return out
