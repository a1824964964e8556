"""Process plumbing shared by the local Kafka and Redis servers (POSIX only)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

# Re-exported for the stack modules; it lives beside the atomic writers (training uses it too).
from streamer.atomic import file_lock as file_lock


class StackError(RuntimeError):
    """A local server could not be set up, started or stopped; the message says what to do."""


def pid_alive(pid: int, cmdline_marker: str | None = None) -> bool:
    """True when ``pid`` runs and is not a zombie (and its command line has the marker).

    The marker guards against a stale pid file whose pid now belongs to another program.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    proc = Path("/proc") / str(pid)
    if not proc.exists():  # not Linux: the kill probe is all we have
        return True
    try:
        # The state letter follows the parenthesised command name, which may hold spaces.
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        if cmdline_marker is not None:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            return cmdline_marker in cmdline
    except (OSError, IndexError):
        return False
    return True


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def spawn_detached(
    argv: Sequence[str], *, cwd: Path, log_file: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session so it outlives us and ignores our terminal's Ctrl-C."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def terminate(
    pid: int,
    *,
    grace_s: float,
    cmdline_marker: str | None = None,
    child: subprocess.Popen[bytes] | None = None,
) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL. ``child`` is reaped when we spawned it."""

    def alive() -> bool:
        if child is not None and child.pid == pid:
            return child.poll() is None
        return pid_alive(pid, cmdline_marker)

    if not alive():
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not alive():
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and alive():
        time.sleep(0.05)


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (Linux /proc), None when it cannot be read."""
    try:
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on host:port (a connect succeeds or bind fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # REUSEADDR like the servers themselves, so TIME_WAIT leftovers of a just-stopped
        # server do not count as "in use"; a live listener still makes bind fail.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def tail(paths: Sequence[Path], lines: int = 30) -> str:
    """Last ``lines`` lines of the given log files (missing ones skipped), for error messages."""
    out: list[str] = []
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        chunk = text.splitlines()[-lines:]
        if chunk:
            out.append(f"--- {path} (last {len(chunk)} lines) ---")
            out.extend(chunk)
    return "\n".join(out) if out else "(no log output)"


class TrackedProcess:
    """A server process known by its pid file, started by us or by an earlier run.

    The command-line marker guards against a recycled pid that now belongs to
    something else; our own child is checked directly.
    """

    pid_file: Path
    _child: subprocess.Popen[bytes] | None
    _cmdline_marker: str

    def _pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        if pid is None:
            return None
        if self._child is not None and self._child.pid == pid:
            return pid if self._child.poll() is None else None
        return pid if pid_alive(pid, self._cmdline_marker) else None

    def is_running(self) -> bool:
        return self._pid() is not None

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open and nothing answers (a hung server,
        for fault tests); ``resume`` lets it go on."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a server ``pause`` stopped."""
        self._signal(signal.SIGCONT)

    def kill(self, timeout_s: float = 10.0) -> None:
        """SIGKILL the server (a crash: no shutdown, nothing flushed) and wait until it is
        gone; its pid file and data stay, so ``start`` brings it back on the same storage."""
        pid = self._pid()
        if pid is None:
            raise StackError(f"not running (no live pid in {self.pid_file})")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout_s
        while self._pid() is not None:  # reaps our own child (Popen.poll)
            if time.monotonic() > deadline:
                raise StackError(f"pid {pid} still runs {timeout_s:.0f}s after SIGKILL")
            time.sleep(0.05)

    def rss_mb(self) -> float | None:
        """Resident memory in MiB; None when not running."""
        pid = self._pid()
        return None if pid is None else rss_mb(pid)

    def _signal(self, sig: signal.Signals) -> None:
        pid = self._pid()
        if pid is None:
            raise StackError(f"not running (no live pid in {self.pid_file})")
        os.kill(pid, sig)
