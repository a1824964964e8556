"""Where a loaded worker's CPU goes: py-spy attached for one step, its samples summarised.

One extra step of one variant (adaptive by default) at a share of its capacity, with py-spy
(the ``dev`` extra) sampling the worker process and its children (``streamer worker``
supervises the real worker) from outside: no change to the worker, and ``--nonblocking``
so the worker is never paused. Idle threads (waiting in epoll, on a lock) are not sampled,
so the shares are of the CPU the worker used, by all its threads.

Each sample's stack is put in one category by its innermost frame that names one (the
rules below, in order): ONNX Runtime's ``run`` and the tokenizer's ``encode`` hold no GIL
and show as their Python caller, which is what names them. The event loop's and the thread
pool's own frames (asyncio, selectors, threading) name a category only when nothing between
them and the loop's dispatch does: a socket write under a Redis command is Redis's time.
Without pausing the worker, py-spy's idle check (the thread's state, read apart from its
stack) lets some waits through as running: a stack that ends waiting (in epoll, on the
executor's queue, a lock, the supervisor's wait) is counted apart, as waiting, not as CPU.
A thread that is ready to run but waits for a core counts as running: on a machine with
more runnable threads than cores, the figures are of runnable time, not of CPU alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from streamer.bench.pipeline.hold import hold
from streamer.bench.pipeline.messages import Messages
from streamer.bench.pipeline.processes import Session
from streamer.bench.pipeline.results import RATE_HZ, CpuProfile, ProfileRow
from streamer.bench.pipeline.turns import Runner

# (category, path fragment, function name ending or "") in priority order for one frame;
# a stack's category comes from its innermost frame that matches any of them.
RULES: tuple[tuple[str, str, str], ...] = (
    ("onnx run", "onnxruntime/", ""),
    ("threads, executor", "streamer/score/pool.py", ""),
    ("tokenize", "bundle/tokenize.py", "encode"),
    ("tokenize", "tokenizers/", ""),
    ("scorer: padding, buckets", "bundle/tokenize.py", ""),
    ("scorer: other", "streamer/score/", ""),
    ("pydantic", "pydantic", ""),
    ("json decode", "streamer/ingest/decode.py", ""),
    ("ingest: normalize, tickers, markets", "streamer/ingest/", ""),
    ("aiokafka", "aiokafka/", ""),
    ("aiokafka", "/kafka/", ""),
    ("redis", "redis/", ""),
    ("metrics, latency stamps", "prometheus_client/", ""),
    ("metrics, latency stamps", "hdrh/", ""),
    ("metrics, latency stamps", "streamer/latency/", ""),
    ("metrics, latency stamps", "streamer/metrics.py", ""),
    ("faust overhead", "faust/", ""),
    ("faust overhead", "mode/", ""),
    ("worker: batch, aggregate, alert", "streamer/", ""),
    ("worker: batch, aggregate, alert", "agents/", ""),
    ("logging", "logging/", ""),
)
# The loop's and the pool's plumbing: a category only up to the dispatch frames below.
GENERIC: tuple[tuple[str, str], ...] = (
    ("event loop (asyncio)", "asyncio/"),
    ("event loop (asyncio)", "selectors.py"),
    ("threads, executor", "threading.py"),
    ("threads, executor", "concurrent/futures/"),
)
_DISPATCH = ("._run_once", "Handle._run", ".run_forever", "_worker", "Thread.run",
             "._bootstrap_inner")
# Innermost frames of a thread that waits (a blocking call below them, in C).
WAITING = "waiting (epoll, queue, lock)"
_WAITS = (("selectors.py", "select"), ("concurrent/futures/thread.py", "_worker"),
          ("threading.py", ".wait"), ("subprocess.py", "_wait"), ("subprocess.py", ".wait"),
          ("queue.py", ".get"))
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def pyspy() -> str | None:
    """The py-spy executable (the venv's first), or None when it is not installed."""
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.is_file() else shutil.which("py-spy")


def _frames(stack: str) -> tuple[str, list[tuple[str, str]]]:
    """(thread name, [(function, file)] outermost first) of one folded py-spy stack."""
    thread = "?"
    frames: list[tuple[str, str]] = []
    for part in stack.split(";"):
        if part.startswith("process ") and not frames:
            continue
        if part.startswith("thread (") and not frames:
            thread = part.split(": ", 1)[1] if ": " in part else part
            continue
        m = _FRAME.match(part)
        frames.append((m["func"], m["file"]) if m else (part, ""))
    return thread, frames


def category(frames: list[tuple[str, str]]) -> str:
    """The category of one stack (outermost frame first); see the module's docstring."""
    if frames and any(path in frames[-1][1] and frames[-1][0].endswith(fn)
                      for path, fn in _WAITS):
        return WAITING
    generic: str | None = None
    for func, file in reversed(frames):
        for name, path, fn in RULES:
            if path in file and (not fn or func.endswith(fn)):
                return name
        g = next((name for name, path in GENERIC if path in file), None)
        if g is not None:
            generic = generic or g
            if func.endswith(_DISPATCH):
                return generic
    return generic or "other"


def _thread_group(name: str) -> str:
    # The score pool's threads are numbered (score_0, score_1): one row for them all.
    return re.sub(r"_\d+$", "_*", name)


def summarise(lines: Iterable[str], top: int = 12
              ) -> tuple[int, int, list[ProfileRow], list[ProfileRow], list[ProfileRow]]:
    """(active samples, waiting samples, categories, threads, top functions) of py-spy's
    raw output lines; the rows count active samples only."""
    cats: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = waiting = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        thread, frames = _frames(stack)
        cat = category(frames)
        if cat == WAITING:
            waiting += n
            continue
        total += n
        cats[cat] += n
        threads[_thread_group(thread)] += n
        if frames:
            func, file = frames[-1]
            leaves[f"{func} ({'/'.join(Path(file).parts[-2:])})"] += n

    def rows(c: Counter[str], k: int | None = None) -> list[ProfileRow]:
        return [ProfileRow(name=name, samples=n, share=round(n / total, 4) if total else 0.0)
                for name, n in c.most_common(k)]

    return total, waiting, rows(cats), rows(threads), rows(leaves, top)


def worker_pid(pid: int) -> tuple[int, bool]:
    """(pid to attach to, whether to follow its children): ``streamer worker`` supervises
    the real worker, a child process; attached to that child, the supervisor's wait
    loop stays out of the samples."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return (int(children[0]), False) if len(children) == 1 else (pid, True)


async def profile_step(runner: Runner, s: Session, messages: Messages, rate: float,
                       out: Path) -> CpuProfile | None:
    """``s``'s worker held at ``rate`` for a ramp step's time with py-spy attached; None
    without py-spy or a live worker (``runner.say`` tells why)."""
    exe = pyspy()
    if exe is None or s.proc is None or s.proc.poll() is not None:
        runner.say("no CPU profile: " + ("py-spy is not installed (the dev extra: "
                                         ".venv/bin/pip install py-spy)" if exe is None
                                         else f"the {s.v.name} worker is not running"))
        return None
    plan = runner.plan
    seconds = plan.step_s
    raw = out / f"profile-{s.v.name}.txt"
    out.mkdir(parents=True, exist_ok=True)
    pid, follow = worker_pid(s.proc.pid)
    async with runner.turn:
        spy = await asyncio.create_subprocess_exec(
            exe, "record", "--pid", str(pid), *(["--subprocesses"] if follow else []),
            "--nonblocking", "--threads", "--rate", str(RATE_HZ), "--format", "raw",
            "--duration", str(math.ceil(seconds) + 1), "-o", str(raw),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        await asyncio.sleep(0.5)  # attached before the first message is sent
        r = await hold(s, messages, rate=rate, n=max(1, round(rate * seconds)),
                       phase="profile")
        try:
            _, err = await asyncio.wait_for(spy.communicate(), seconds + 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                spy.kill()
            err = b"timed out"
    if not raw.is_file():
        runner.say(f"no CPU profile: py-spy failed ({err.decode(errors='replace').strip()[-300:]})")
        return None
    total, waiting, cats, threads, top = summarise(
        raw.read_text("utf-8", errors="replace").splitlines())
    version = (await _version(exe)) or "py-spy"
    runner.say(f"[{s.v.name}] CPU profile at {rate:,.1f} msg/s: {total:,} samples, "
               + ", ".join(f"{c.name} {c.share:.0%}" for c in cats[:4]))
    return CpuProfile(tool=version, variant=s.v.name, offered_rate=round(rate, 2),
                      completed_rate=r.completed_rate, seconds=seconds, samples=total,
                      waiting=waiting, messages=r.completed,
                      categories=cats, threads=threads, top=top, e2e=r.e2e, stages=r.stages,
                      raw=raw.name)


async def _version(exe: str) -> str | None:
    proc = await asyncio.create_subprocess_exec(exe, "--version", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    outp, _ = await proc.communicate()
    return outp.decode().strip() or None
