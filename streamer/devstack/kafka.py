"""A real Apache Kafka broker (KRaft) run from Maven Central jars, no Docker.

``LocalKafka`` is one combined broker+controller node: the single-node stack by default,
or one node of the local cluster (``kafka_cluster.LocalKafkaCluster``) given its layout.

Layout:
  <cache_dir>/kafka/<version>/libs/*.jar       jars (fetched once by ``mvn``; shared)
  <data_dir>/kafka/server.properties            generated on every start
  <data_dir>/kafka/state.json                   cluster id + what the storage was formatted for
  <data_dir>/kafka/data/                        log.dirs: topics, offsets, metadata log
  <data_dir>/kafka/logs/server.log              broker log (log4j2); stdout.log: JVM output
  <data_dir>/kafka/kafka.pid
  <data_dir>/tls/                               CA + server keystore (SASL_SSL only)
  <data_dir>/kafka-cluster/node-<id>/            the same layout, per node of a cluster

With ``STREAMER_KAFKA_SECURITY_PROTOCOL=SASL_SSL`` the client listener (``STREAMER_KAFKA_PORT``) is
SASL_SSL with the configured SCRAM mechanism, its certificate signed by the stack's own
CA (``<data_dir>/tls/ca.pem``: point STREAMER_KAFKA_SSL_CAFILE at it), and the SCRAM
user is created when the storage is formatted. The broker talks to itself (transaction
markers) on a PLAINTEXT listener on another 127.0.0.1 port, picked on every start.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from streamer.devstack._proc import (
    StackError,
    TrackedProcess,
    file_lock,
    free_port,
    port_in_use,
    rss_mb,
    spawn_detached,
    tail,
    terminate,
)
from streamer.devstack.tls import ensure_server_tls
from streamer.kafka.security import KafkaSecurityError, client_options
from streamer.settings import Settings

_MIN_JAVA = 17
_MAIN_CLASS = "kafka.Kafka"
_STOP_GRACE_S = 30.0  # well above a normal controlled shutdown of one node (docs/BENCHMARKS.md)


class KafkaNodeStatus(BaseModel):
    """One node: a combined broker and quorum voter."""

    node_id: int
    roles: str
    running: bool
    pid: int | None
    port: int
    controller_port: int
    rss_mb: float | None  # resident memory, None when not running
    data_dir: Path


class KafkaStatus(BaseModel):
    """The local Kafka: one node, or a cluster (``pid`` None, ``bootstrap`` every node)."""

    running: bool  # every node runs
    pid: int | None
    bootstrap: str
    data_dir: Path
    version: str
    brokers: int = 1
    nodes: list[KafkaNodeStatus] = []


class Voter(BaseModel):
    """A controller quorum member as ``kafka-storage format --initial-controllers`` names it."""

    node_id: int
    controller_port: int
    directory_id: str  # the metadata log directory's id, a Kafka Uuid

    def spec(self) -> str:
        return f"{self.node_id}@127.0.0.1:{self.controller_port}:{self.directory_id}"


class KafkaNodeLayout(BaseModel):
    """Where one node lives: its id, ports and folder, and the quorum it belongs to."""

    node_id: int = 1
    port: int
    controller_port: int
    dir: Path
    voters: list[Voter] = []  # empty: a single node, its own quorum (--standalone)
    cluster_id: str | None = None  # a cluster's nodes share one, chosen by the cluster

    @property
    def cluster_size(self) -> int:
        return max(1, len(self.voters))

    @property
    def replication_factor(self) -> int:
        return min(3, self.cluster_size)

    @property
    def min_insync_replicas(self) -> int:
        # RF 3 -> 2: one replica may be down and acks=all writes still succeed.
        return max(1, self.replication_factor - 1)


class _KafkaState(BaseModel):
    """What the storage under data_dir was formatted with; kept across restarts."""

    cluster_id: str
    version: str
    controller_port: int
    scram_user: str | None = None  # the SCRAM user created at format time (SASL_SSL)


def java_major(version_output: str) -> int | None:
    """Major Java version from ``java -version`` output ("1.8.0_392" -> 8, "17.0.15" -> 17)."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if m is None:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2) is not None:
        return int(m.group(2))
    return major


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Same shape as ``kafka-storage random-uuid`` (which also never starts with '-'),
    without paying a JVM start for it.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _text(data: str | bytes | None) -> str:
    # TimeoutExpired carries bytes or str depending on where the timeout hit.
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def _argfile_quote(arg: str) -> str:
    """One argument for a java @argfile: double-quoted, backslashes and quotes escaped."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _resource_text(name: str) -> str:
    return resources.files("streamer.devstack").joinpath(name).read_text(encoding="utf-8")


def single_node_layout(settings: Settings) -> KafkaNodeLayout:
    s = settings.stack
    return KafkaNodeLayout(port=s.kafka_port, controller_port=s.kafka_controller_port,
                           dir=settings.paths.data_dir / "kafka")


class LocalKafka(TrackedProcess):
    """One local KRaft broker+controller listening on 127.0.0.1 only: the single-node
    stack, or (given a ``layout``) one node of a cluster."""

    _cmdline_marker = _MAIN_CLASS

    def __init__(self, settings: Settings, layout: KafkaNodeLayout | None = None) -> None:
        self.settings = settings
        self.layout = layout or single_node_layout(settings)
        self.node_id = self.layout.node_id
        self.version = settings.stack.kafka_version
        self.home = settings.paths.cache_dir / "kafka" / settings.stack.kafka_version
        self.libs_dir = self.home / "libs"
        self.dir = self.layout.dir
        self.name = f"Kafka node {self.node_id}" if self.layout.voters else "Kafka"
        self.log_dirs = self.dir / "data"
        self.logs = self.dir / "logs"
        self.pid_file = self.dir / "kafka.pid"
        self.state_file = self.dir / "state.json"
        self.properties_file = self.dir / "server.properties"
        self._child: subprocess.Popen[bytes] | None = None
        self._internal_port: int | None = None

    @property
    def secure(self) -> bool:
        """The client listener is SASL_SSL (else PLAINTEXT)."""
        protocol = self.settings.kafka.security_protocol
        if protocol not in ("PLAINTEXT", "SASL_SSL"):
            raise StackError(
                f"the local Kafka runs PLAINTEXT or SASL_SSL, not {protocol} "
                "(STREAMER_KAFKA_SECURITY_PROTOCOL)")
        return protocol == "SASL_SSL"

    # --- addresses -------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.layout.port}"

    @property
    def _complete_marker(self) -> Path:
        return self.home / "COMPLETE"

    # --- prerequisites ---------------------------------------------------------------

    @staticmethod
    def java() -> str:
        """Path of a Java >= 17 executable (JAVA_HOME first, then PATH)."""
        java_home = os.environ.get("JAVA_HOME")
        candidate = str(Path(java_home) / "bin" / "java") if java_home else None
        if candidate is None or not Path(candidate).is_file():
            candidate = shutil.which("java")
        if candidate is None:
            raise StackError(
                "Java not found: Kafka needs a JDK/JRE >= 17 on PATH (or JAVA_HOME). "
                "On Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless"
            )
        try:
            out = subprocess.run(
                [candidate, "-version"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StackError(f"could not run {candidate} -version: {exc}") from exc
        major = java_major(out.stderr + out.stdout)
        if major is None or major < _MIN_JAVA:
            raise StackError(
                f"{candidate} is Java {major or 'unknown'}; Kafka needs Java >= {_MIN_JAVA}. "
                "Install openjdk-17 (apt-get install -y openjdk-17-jre-headless) and put it "
                "first on PATH or set JAVA_HOME."
            )
        return candidate

    def _pom_text(self) -> str:
        return _resource_text("pom.xml")

    def jars_ready(self) -> bool:
        marker = self._complete_marker
        pom_digest = hashlib.sha256(self._pom_text().encode()).hexdigest()
        try:
            return marker.read_text().strip() == pom_digest and self.libs_dir.is_dir()
        except OSError:
            return False

    def fetch_jars(self) -> Path:
        """Download the broker + tools jars for ``STREAMER_KAFKA_VERSION`` once; returns the
        libs dir.

        Maven's local repository stays at its default (~/.m2) so CI can cache it; the
        marker holds the pom's digest, so editing the pom re-fetches.
        """
        if self.jars_ready():
            return self.libs_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError(
                "Maven (mvn) not found; it fetches the Kafka jars from Maven Central. "
                "On Debian/Ubuntu: apt-get install -y maven"
            )
        self.java()  # mvn itself needs Java; fail with the clearer message first
        with file_lock(self.home.parent / f".{self.version}.lock"):
            if self.jars_ready():  # another process fetched while we waited
                return self.libs_dir
            pom_text = self._pom_text()
            pom = self.home / "pom.xml"
            staging = self.home / "libs.partial"
            self.home.mkdir(parents=True, exist_ok=True)
            pom.write_text(pom_text, encoding="utf-8")
            shutil.rmtree(staging, ignore_errors=True)
            cmd = [
                mvn,
                "-q",
                "-B",
                "-Dstyle.color=never",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
                f"-Dkafka.version={self.version}",
            ]
            try:
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, check=False, timeout=1800
                )
            except subprocess.TimeoutExpired as exc:
                raise StackError(f"mvn timed out fetching Kafka {self.version} jars") from exc
            if proc.returncode != 0 or not any(staging.glob("kafka_*.jar")):
                # Maven 3.8 colours some lines even in batch mode; keep messages plain.
                plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
                out = "\n".join(line for line in plain.splitlines()[-30:] if line.strip())
                raise StackError(
                    f"mvn could not fetch Kafka {self.version} jars (exit {proc.returncode}). "
                    f"Check network access to Maven Central and the version.\n{out}"
                )
            shutil.rmtree(self.libs_dir, ignore_errors=True)
            staging.rename(self.libs_dir)
            self._complete_marker.write_text(hashlib.sha256(pom_text.encode()).hexdigest())
        return self.libs_dir

    def _tools_log4j(self) -> Path:
        path = self.home / "log4j2-tools.properties"
        text = _resource_text("log4j2-tools.properties")
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        return path

    def _java_cmd(self, main_class: str, jvm_opts: Sequence[str] = ()) -> list[str]:
        # The JVM expands the "dir/*" classpath wildcard itself; no shell involved.
        return [self.java(), *jvm_opts, "-cp", f"{self.libs_dir}/*", main_class]

    # --- tools -----------------------------------------------------------------------

    def run_tool(
        self, main_class: str, args: list[str], timeout: float, *, secret_args: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run a class from the broker's jars, e.g. Kafka's own console consumer
        (``org.apache.kafka.tools.consumer.ConsoleConsumer``).

        Tool logging goes to stderr at WARN, so stdout carries only the tool's output.
        Raises StackError when it runs past ``timeout`` seconds. ``secret_args``: the
        main class and ``args`` go through a private java @argfile, off the command line
        (``ps``, /proc), and the file is removed when the tool ends.
        """
        self.fetch_jars()
        cmd = self._java_cmd(
            main_class,
            [
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",  # short-lived: start fast beats peak speed
                f"-Dlog4j2.configurationFile={self._tools_log4j()}",
            ],
        )
        argfile: Path | None = None
        if secret_args:
            fd, name = tempfile.mkstemp(prefix=".args-", dir=self.home)  # mode 0600
            argfile = Path(name)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("\n".join(_argfile_quote(a) for a in [main_class, *args]) + "\n")
            cmd = [*cmd[:-1], f"@{argfile}"]
        else:
            cmd += args
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            out, err = _text(exc.stdout), _text(exc.stderr)
            raise StackError(
                f"{main_class} ran past {timeout:.0f}s\nstdout:\n{out[-2000:]}\n"
                f"stderr:\n{err[-2000:]}"
            ) from exc
        finally:
            if argfile is not None:
                argfile.unlink(missing_ok=True)

    # --- lifecycle -------------------------------------------------------------------

    def status(self) -> KafkaStatus:
        state = self._load_state()
        node = self.node_status()
        return KafkaStatus(
            running=node.running,
            pid=node.pid,
            bootstrap=self.bootstrap,
            data_dir=self.dir,
            version=state.version if state is not None else self.version,
            nodes=[node],
        )

    def node_status(self) -> KafkaNodeStatus:
        pid = self._pid()
        return KafkaNodeStatus(
            node_id=self.node_id, roles="broker,controller", running=pid is not None, pid=pid,
            port=self.layout.port, controller_port=self.layout.controller_port,
            rss_mb=None if pid is None else rss_mb(pid), data_dir=self.dir)

    def _load_state(self) -> _KafkaState | None:
        try:
            return _KafkaState.model_validate_json(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def _server_properties(self) -> str:
        node = self.layout
        quorum = [v.controller_port for v in node.voters] or [node.controller_port]
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.bootstrap.servers": ",".join(f"127.0.0.1:{p}" for p in quorum),
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{node.port},"
                f"CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://127.0.0.1:{node.port},"
                f"CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dirs),
            "num.partitions": "4",
            "auto.create.topics.enable": "true",
            # No other members will ever join; don't make the first consumer wait 3 s.
            "group.initial.rebalance.delay.ms": "0",
            **self._replication_properties(),
        }
        if self.secure:
            props.update(self._secure_properties())
        lines = ["# Generated by streamer.devstack.kafka on every start; edits are overwritten."]
        lines += [f"{k}={v}" for k, v in props.items()]
        return "\n".join(lines) + "\n"

    def _replication_properties(self) -> dict[str, str]:
        """RF min(3, nodes) and min ISR one less, for topics and internal topics alike
        (a single node: 1 and 1, as internal topics cannot have more replicas)."""
        rf, isr = str(self.layout.replication_factor), str(self.layout.min_insync_replicas)
        props = {
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
        }
        if self.layout.voters:
            props.update({
                "default.replication.factor": rf,
                "min.insync.replicas": isr,
                # Kafka's default, stated: a replica out of the ISR never becomes leader,
                # so an acknowledged record is never dropped by a failover.
                "unclean.leader.election.enable": "false",
            })
        return props

    def _secure_properties(self) -> dict[str, str]:
        """SASL_SSL on the client port; PLAINTEXT for the broker's own traffic on another."""
        s = self.settings
        if self._internal_port is None:
            self._internal_port = free_port()
        tls = ensure_server_tls(s.paths.data_dir / "tls", "kafka")
        mechanism = s.kafka.sasl_mechanism
        if not mechanism.startswith("SCRAM-"):
            raise StackError(f"the local Kafka supports SCRAM mechanisms, not {mechanism}")
        clients = f"SASL_SSL://127.0.0.1:{self.layout.port}"
        internal = f"INTERNAL://127.0.0.1:{self._internal_port}"
        controller = f"CONTROLLER://127.0.0.1:{self.layout.controller_port}"
        prefix = f"listener.name.sasl_ssl.{mechanism.lower()}"
        return {
            "listeners": f"{clients},{internal},{controller}",
            "advertised.listeners": f"{clients},{internal},{controller}",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map": (
                "SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT"),
            "sasl.enabled.mechanisms": mechanism,
            f"{prefix}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"),
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(tls.keystore),
            "ssl.keystore.password": tls.keystore_password,
            "ssl.client.auth": "none",
        }

    def _scram_arg(self) -> str:
        s = self.settings
        try:
            user, password = s.kafka.sasl_username, s.kafka.password()
        except ValueError as exc:
            raise StackError(str(exc)) from exc
        if not user or not password:
            raise StackError(
                "a SASL_SSL local Kafka needs STREAMER_KAFKA_SASL_USERNAME and "
                "STREAMER_KAFKA_SASL_PASSWORD (or _FILE) for the user it creates")
        if re.search(r'[\s,\[\]="\\]', user + password):
            raise StackError("the local Kafka's SCRAM user name and password may not hold "
                             'spaces or any of , [ ] = " \\')
        return f"{s.kafka.sasl_mechanism}=[name={user},password={password}]"

    def _prepare_storage(self) -> None:
        """Write config; format the storage only the first time (formatting wipes nothing,
        but a second format fails, and the metadata log must keep its cluster id)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.properties_file.touch(mode=0o600, exist_ok=True)
        self.properties_file.chmod(0o600)  # it may hold the keystore password
        self.properties_file.write_text(self._server_properties(), encoding="utf-8")
        (self.dir / "log4j2.properties").write_text(
            _resource_text("log4j2-broker.properties"), encoding="utf-8"
        )
        state = self._load_state()
        formatted = (self.log_dirs / "meta.properties").is_file()
        node = self.layout
        if formatted and state is not None:
            if state.controller_port != node.controller_port:
                # The controller's endpoint is stored in the metadata log at format time.
                raise StackError(
                    f"{self.dir} was formatted for controller port {state.controller_port}, "
                    f"not {node.controller_port}. Set STREAMER_KAFKA_CONTROLLER_PORT back "
                    f"(node i of a cluster: that + 2i) or delete {self.dir} (loses topics)."
                )
            if self.secure and state.scram_user != self.settings.kafka.sasl_username:
                # SCRAM users are written into the metadata log when it is formatted.
                raise StackError(
                    f"{self.dir} was formatted without SCRAM user "
                    f"{self.settings.kafka.sasl_username!r}; delete {self.dir} (loses "
                    "topics) to start a SASL_SSL broker with it.")
            return
        if formatted:
            raise StackError(
                f"{self.log_dirs} holds Kafka data but {self.state_file} is missing; "
                f"delete {self.dir} to start over."
            )
        state = _KafkaState(
            cluster_id=node.cluster_id or new_cluster_id(),
            version=self.version,
            controller_port=node.controller_port,
        )
        # A dynamic (KIP-853) quorum: one voter that is itself, or the cluster's voters
        # (every node formats with the same list; its own entry names its directory id).
        quorum = (["--initial-controllers", ",".join(v.spec() for v in node.voters)]
                  if node.voters else ["--standalone"])
        args = ["format", *quorum, "-t", state.cluster_id, "-c", str(self.properties_file)]
        if self.secure:
            state.scram_user = self.settings.kafka.sasl_username
            args += ["--add-scram", self._scram_arg()]
        proc = self.run_tool("kafka.tools.StorageTool", args, timeout=120,
                             secret_args=self.secure)
        if proc.returncode != 0:
            raise StackError(
                f"kafka-storage format failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            )
        self.state_file.write_text(state.model_dump_json(indent=2), encoding="utf-8")

    def start(self) -> str:
        """Start the broker (or find it running) and return its bootstrap once it answers."""
        timeout = self.settings.stack.stack_start_timeout_s
        with file_lock(self.dir / ".lock"):
            if self.is_running():
                self.wait_ready(timeout)
                return self.bootstrap
            self.launch()
            try:
                self.wait_ready(timeout)
            except StackError:
                self._kill_after_failed_start()
                raise
        return self.bootstrap

    def launch(self) -> bool:
        """Spawn the JVM on this node's storage (formatted the first time) without waiting
        for it to answer; False when it already runs. A cluster launches every node before
        waiting: none answers clients until a quorum of voters has elected a leader."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.dir / ".launch.lock"):
            if self.is_running():
                return False
            self.pid_file.unlink(missing_ok=True)  # stale
            self.fetch_jars()
            for port in (self.layout.port, self.layout.controller_port):
                if port_in_use(port):
                    raise StackError(
                        f"port 127.0.0.1:{port} is already in use by another program; "
                        "stop it or choose other ports (STREAMER_KAFKA_PORT, "
                        "STREAMER_KAFKA_CONTROLLER_PORT)."
                    )
            self._prepare_storage()
            jvm_opts = [
                f"-Xmx{self.settings.stack.kafka_heap}",
                "-Xms64m",  # grow on demand; a dev broker rarely needs the full heap
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true",
                f"-Dkafka.logs.dir={self.logs}",
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            ]
            self._child = spawn_detached(
                [*self._java_cmd(_MAIN_CLASS, jvm_opts), str(self.properties_file)],
                cwd=self.dir,
                log_file=self.logs / "stdout.log",
            )
            self.pid_file.write_text(f"{self._child.pid}\n")
        return True

    def _kill_after_failed_start(self) -> None:
        pid = self._pid()
        if pid is not None:
            terminate(pid, grace_s=5.0, cmdline_marker=_MAIN_CLASS, child=self._child)
        self.pid_file.unlink(missing_ok=True)

    def _log_tail(self) -> str:
        return tail([self.logs / "server.log", self.logs / "stdout.log"], 30)

    def wait_ready(self, timeout: float) -> None:
        """Until the node serves clients (see ``_probe``); StackError after ``timeout`` s or
        when the process exits."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        try:
            security = client_options(self.settings.kafka)
        except KafkaSecurityError as exc:
            raise StackError(str(exc)) from exc
        while True:
            if not self.is_running():
                raise StackError(f"{self.name} exited during start-up.\n{self._log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StackError(
                    f"{self.name} did not answer on {self.bootstrap} within {timeout:.0f}s "
                    f"({last_error}).\n{self._log_tail()}"
                )
            if not _accepts(self.layout.port):
                # Plain TCP first: aiokafka logs every refused connect at ERROR level.
                last_error = "port not open yet"
                time.sleep(0.2)
                continue
            try:
                waiting_for = _probe(self.bootstrap, min(5.0, max(remaining, 0.5)), security,
                                     self.node_id)
                if waiting_for is None:
                    return
                last_error = waiting_for
            except Exception as exc:  # any client error just means "not yet"
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after a grace period."""
        with file_lock(self.dir / ".lock"):
            pid = self._pid()
            if pid is not None:
                terminate(pid, grace_s=_STOP_GRACE_S, cmdline_marker=_MAIN_CLASS, child=self._child)
                if self._pid() is not None:
                    raise StackError(f"{self.name} (pid {pid}) did not stop")
            self.pid_file.unlink(missing_ok=True)
            self._child = None


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# Kafka error codes meaning "the group coordinator is not serving yet".
_COORDINATOR_NOT_READY = frozenset({14, 15, 16})  # LOAD_IN_PROGRESS, NOT_AVAILABLE, NOT_COORDINATOR
_PROBE_TOPIC = "__streamer_ready_probe"  # need not exist: only the group-level answer matters


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode`` (signed 32-bit), for ASCII text."""
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition_for(group_id: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition (= coordinator shard) Kafka maps a group to."""
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


def _probe_groups(partitions: int) -> list[str]:
    """One made-up group id per ``__consumer_offsets`` partition."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        name = f"__streamer-ready-{i}"
        found.setdefault(offsets_partition_for(name, partitions), name)
        i += 1
    return list(found.values())


def _probe(bootstrap: str, timeout_s: float, security: dict[str, Any],
           node_id: int = 1) -> str | None:
    """None when the broker is ready for clients, else what it is still waiting for.

    Ready means: metadata lists the broker (``node_id``: a cluster node has registered
    and caught up), and every consumer-offsets shard has a leader that has loaded it.
    The second part matters after a restart: until a shard is loaded, OffsetFetch v2+
    answers with a group-level COORDINATOR_LOAD_IN_PROGRESS and an empty body, which
    aiokafka 0.14 ignores and reads as "no committed offset" (the consumer then falls back
    to auto_offset_reset).
    """
    # Heavy imports, only when probing.
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.commit import OffsetFetchRequest
    from aiokafka.structs import TopicPartition

    async def probe() -> str | None:
        client = AIOKafkaClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            client_id="streamer-stack-probe",
            **security,
        )
        try:
            await asyncio.wait_for(client.bootstrap(), timeout_s)
            cluster = await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
            if node_id not in {b.nodeId for b in cluster.brokers()}:
                return f"metadata does not list broker {node_id} yet"
            shards = cluster.partitions_for_topic("__consumer_offsets")
            if not shards:
                return None  # no group has ever committed: nothing to load
            for group in _probe_groups(len(shards)):
                # The shard's leader coordinates the group (on one node: that node).
                leader = cluster.leader_for_partition(TopicPartition(
                    "__consumer_offsets", offsets_partition_for(group, len(shards))))
                if leader is None or leader < 0:
                    return "a consumer-offsets shard has no leader yet"
                request = OffsetFetchRequest(group, [(_PROBE_TOPIC, [0])])
                resp = await asyncio.wait_for(client.send(leader, request), timeout_s)
                codes = {getattr(resp, "error_code", 0)}
                codes.update(p[3] for _, parts in resp.topics for p in parts)
                if codes & _COORDINATOR_NOT_READY:
                    return "group coordinator still loading committed offsets"
            return None
        finally:
            await client.close()

    # A private thread + loop: start() is a sync API and may be called from inside a
    # running event loop (async tests, async callers), where asyncio.run fails.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, probe()).result()
