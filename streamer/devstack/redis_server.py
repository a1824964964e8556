"""A local ``redis-server`` (Debian's package) with append-only persistence, no Docker.

Layout:
  <data_dir>/redis/            --dir: appendonlydir/ (AOF), dump.rdb
  <data_dir>/redis/redis.conf  only the password / ACL user (0600), so it never shows in ``ps``
  <data_dir>/tls/              CA + server certificate when REDIS_URL is rediss:// (TLS only)
  <data_dir>/redis/redis.log   server output
  <data_dir>/redis/redis.pid
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import redis
from pydantic import BaseModel

from streamer.devstack._proc import (
    StackError,
    TrackedProcess,
    file_lock,
    port_in_use,
    spawn_detached,
    tail,
    terminate,
)
from streamer.devstack.tls import ensure_server_tls
from streamer.settings import RedisSettings, Settings

_MARKER = "redis-server"
_STOP_GRACE_S = 20.0  # SIGTERM makes redis fsync the AOF first; that is quick at dev sizes
_INSTALL_HINT = "apt-get update && apt-get install -y redis-server"


def quoted(text: str) -> str:
    """``text`` as one redis.conf argument."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def auth_config(redis_settings: RedisSettings) -> str:
    """redis.conf lines for the password or ACL user (empty when neither is set); the
    local Redis Cluster's nodes take the same lines."""
    user, password = redis_settings.username, redis_settings.secret()
    if user:
        if not password:
            raise StackError("STREAMER_REDIS_USERNAME needs STREAMER_REDIS_PASSWORD (or _FILE)")
        if any(c.isspace() for c in user):
            raise StackError("STREAMER_REDIS_USERNAME may not hold spaces")
        rule = quoted(f">{password}")
        lines = [] if user == "default" else ["user default off"]
        lines.append(f"user {user} on {rule} ~* &* +@all")
        return "\n".join(lines) + "\n"
    if password:
        return f"requirepass {quoted(password)}\n"
    return ""


class RedisStatus(BaseModel):
    running: bool
    pid: int | None
    url: str
    data_dir: Path
    version: str | None
    rss_mb: float | None = None  # resident memory; None when not running


class LocalRedis(TrackedProcess):
    """One local redis-server bound to 127.0.0.1."""

    _cmdline_marker = _MARKER

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.paths.data_dir / "redis"
        self.pid_file = self.dir / "redis.pid"
        self.log_file = self.dir / "redis.log"
        self.conf_file = self.dir / "redis.conf"
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def tls(self) -> bool:
        """Serve TLS only (REDIS_URL is rediss://), with a certificate from the stack's CA."""
        return self.settings.redis.url.startswith("rediss://")

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.settings.stack.redis_port}/0"

    # --- prerequisites ---------------------------------------------------------------

    @staticmethod
    def find_binary() -> str | None:
        # /usr/sbin is often missing from a non-root PATH; Debian puts redis-server in /usr/bin.
        return shutil.which("redis-server") or next(
            (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).is_file()),
            None,
        )

    def ensure_installed(self) -> str:
        """Path of ``redis-server``; installs Debian's package when root, else says how."""
        found = self.find_binary()
        if found is not None:
            return found
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            raise StackError(
                "redis-server not found. Install it, e.g. on Debian/Ubuntu: "
                f"sudo sh -c '{_INSTALL_HINT}' (or brew install redis on macOS)."
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "redis-server"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if proc.returncode != 0:
                raise StackError(
                    f"{' '.join(cmd)} failed (exit {proc.returncode}):\n"
                    + "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
                )
        found = self.find_binary()
        if found is None:
            raise StackError("apt-get installed redis-server but it is not on PATH")
        return found

    def server_version(self) -> str | None:
        binary = self.find_binary()
        if binary is None:
            return None
        try:
            out = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        m = re.search(r"v=(\S+)", out)
        return m.group(1) if m else None

    # --- lifecycle -------------------------------------------------------------------

    def status(self) -> RedisStatus:
        pid = self._pid()
        return RedisStatus(
            running=pid is not None,
            pid=pid,
            url=self.url,
            data_dir=self.dir,
            version=self.server_version(),
            rss_mb=self.rss_mb(),
        )

    def _client(self, timeout_s: float) -> redis.Redis:
        tls: dict[str, object] = {}
        if self.tls:
            ca = ensure_server_tls(self.settings.paths.data_dir / "tls", "redis").ca_file
            tls = {"ssl": True, "ssl_ca_certs": str(ca)}
        return redis.Redis(
            host="127.0.0.1",
            port=self.settings.stack.redis_port,
            username=self.settings.redis.username,
            password=self.settings.redis.secret(),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            **tls,  # type: ignore[arg-type]
        )

    def _config(self) -> str:
        """redis.conf lines for the password or ACL user (empty when neither is set)."""
        return auth_config(self.settings.redis)

    def start(self) -> str:
        """Start redis-server (or find it running) and return its URL once it answers PING."""
        timeout = self.settings.stack.stack_start_timeout_s
        with file_lock(self.dir / ".lock"):
            if self.is_running():
                self._wait_ready(timeout)
                return self.url
            self.pid_file.unlink(missing_ok=True)  # stale
            binary = self.ensure_installed()
            if port_in_use(self.settings.stack.redis_port):
                raise StackError(
                    f"port 127.0.0.1:{self.settings.stack.redis_port} is already in use by another "
                    "program (a system redis?); stop it or set STREAMER_REDIS_PORT."
                )
            self.dir.mkdir(parents=True, exist_ok=True)
            argv = [binary]
            config = self._config()
            if config:
                # A config file (first argument) keeps the secret off the command line.
                self.conf_file.touch(mode=0o600, exist_ok=True)
                self.conf_file.chmod(0o600)
                self.conf_file.write_text(config)
                argv.append(str(self.conf_file))
            else:
                self.conf_file.unlink(missing_ok=True)
            port = str(self.settings.stack.redis_port)
            if self.tls:
                tls = ensure_server_tls(self.settings.paths.data_dir / "tls", "redis")
                argv += [
                    "--port", "0",
                    "--tls-port", port,
                    "--tls-cert-file", str(tls.cert_file),
                    "--tls-key-file", str(tls.key_file),
                    "--tls-ca-cert-file", str(tls.ca_file),
                    "--tls-auth-clients", "no",  # clients check the server, not vice versa
                ]  # fmt: skip
            else:
                argv += ["--port", port]
            argv += [
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--appendonly", "yes",
                "--daemonize", "no",  # stays our child; logs to stdout -> redis.log
            ]  # fmt: skip
            self._child = spawn_detached(argv, cwd=self.dir, log_file=self.log_file)
            self.pid_file.write_text(f"{self._child.pid}\n")
            try:
                self._wait_ready(timeout)
            except StackError:
                terminate(self._child.pid, grace_s=5.0, child=self._child)
                self.pid_file.unlink(missing_ok=True)
                raise
        return self.url

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while True:
            if not self.is_running():
                raise StackError(
                    f"redis-server exited during start-up.\n{tail([self.log_file], 30)}"
                )
            if time.monotonic() >= deadline:
                raise StackError(
                    f"redis-server did not answer PING on {self.url} within {timeout:.0f}s "
                    f"({last_error}).\n{tail([self.log_file], 30)}"
                )
            client = self._client(1.0)
            try:
                if client.ping():
                    return
            except redis.RedisError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            finally:
                client.close()
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: redis treats it like SHUTDOWN (flushes the AOF), SIGKILL only if stuck."""
        with file_lock(self.dir / ".lock"):
            pid = self._pid()
            if pid is not None:
                terminate(pid, grace_s=_STOP_GRACE_S, cmdline_marker=_MARKER, child=self._child)
                if self._pid() is not None:
                    raise StackError(f"redis-server (pid {pid}) did not stop")
            self.pid_file.unlink(missing_ok=True)
            self._child = None
