"""A real worker switches models under load, by hand, without a restart.

The worker starts on bundle A (the quick default's place in its cache) while a steady
stream flows; `streamer models promote B` mid-stream makes it load B beside A and switch
between batches; `streamer models rollback` then returns it to A. Read with
read_committed, every input is scored exactly once and Redis counts each once; on each
partition the records name A, then B (never A again before the rollback); after the
rollback they name A; and the worker frees each model it switched away from.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from bundle_support import link_copy
from harness import (
    REPO,
    BackgroundProducer,
    Namespace,
    WorkerProcess,
    consumed_total,
    measure,
    mixed_stream,
    produce,
    read_topic,
    wait_consumed,
)

from streamer.bundle.load import load_bundle

pytestmark = pytest.mark.slow


def _get(worker: WorkerProcess, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}{path}", timeout=5) as r:
        return bytes(r.read())


def _live(worker: WorkerProcess) -> str:
    return str(orjson.loads(_get(worker, "/api/model"))["bundle_id"])


def _samples(worker: WorkerProcess, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric family from the worker's /metrics."""
    out = {}
    for line in _get(worker, "/metrics").decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series, value = line.rsplit(" ", 1)
            out[series[len(name):]] = float(value)
    return out


def _wait(what: str, ok: Callable[[], bool], worker: WorkerProcess,
          timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout}s:\n{worker.tail()}")


def _streamer(ns: Namespace, *args: str) -> str:
    env = {**os.environ, **ns.env()}
    done = subprocess.run([sys.executable, "-m", "streamer.cli.main", "models", *args],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_worker_under_load_switches_models_without_loss_or_repeats(
    kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tiny_bundle_b: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STREAMER_BUNDLE_DIR", raising=False)  # a pin would stop the switch
    cache = tmp_path / "cache"
    link_copy(tiny_bundle, cache / "bundles" / "default")
    a, b = (load_bundle(p, verify=()).id for p in (tiny_bundle, tiny_bundle_b))
    ns = Namespace(kafka_bootstrap, redis_url, tmp_path, partitions=2, extra_env={
        "STREAMER_SCORER": "onnx", "STREAMER_CACHE_DIR": str(cache),
        "STREAMER_MODEL_WATCH_S": "0.5",
    })
    first = mixed_stream(ns, seed=31, minutes=4, bad_fraction=0.0, big_message=False)
    second = mixed_stream(ns, seed=32, minutes=1, bad_fraction=0.0, big_message=False)
    worker = WorkerProcess(ns, "swap").start()
    try:
        worker.wait_ready(timeout=180)
        assert _live(worker) == a

        producer = BackgroundProducer(ns, first, rate=30).start()
        _wait("a quarter of the stream scored", lambda: consumed_total(ns) >= len(first) // 4,
              worker)
        _streamer(ns, "promote", str(tiny_bundle_b))
        _wait("the worker on B", lambda: _live(worker) == b, worker)
        assert consumed_total(ns) < len(first), "the stream ended before the switch"
        producer.join()
        wait_consumed(ns, len(first), workers=[worker])

        _streamer(ns, "rollback")
        _wait("the worker back on A", lambda: _live(worker) == a, worker)
        produce(ns, second)
        wait_consumed(ns, len(first) + len(second), workers=[worker])

        outcome = measure(ns, first + second)
        assert outcome.clean, outcome  # none lost, none scored or counted twice
        records = read_topic(ns, ns.settings().topics.scored, len(first) + len(second))
        swaps = _samples(worker, "streamer_model_swaps_total")
        assert swaps == {'{result="swapped"}': 2.0}, swaps
        deadline = time.monotonic() + 60  # freed once the last batch on each is done
        while ((alive := _samples(worker, "streamer_models_retired_alive")) != {"": 0.0}
               and time.monotonic() < deadline):
            time.sleep(0.25)
        assert alive == {"": 0.0}, f"models switched away from still in memory: {alive}"
        info = _samples(worker, "streamer_model_info")
        assert len(info) == 1 and f'bundle_id="{a}"' in next(iter(info)), info
    finally:
        worker.stop()

    phase = {orjson.loads(m.value)["id"]: n for n, ms in enumerate((first, second))
             for m in ms}
    models: dict[tuple[int, str, int], list[tuple[int, str]]] = defaultdict(list)
    for ev in records:
        assert ev["model"]["variant"] and ev["model"]["bundle"] in ("tiny", "tiny-b")
        origin = ev["origin"]
        models[(phase[ev["id"]], origin["topic"], origin["partition"])].append(
            (origin["offset"], "A" if ev["model"]["bundle_id"] == a else "B"))
    order = {key: "".join(m for _, m in sorted(v)) for key, v in models.items()}
    during = "".join(v for (p, _, _), v in order.items() if p == 0)
    assert "A" in during and "B" in during  # the switch came mid-stream
    for (p, topic, partition), seq in order.items():
        # One switch per input partition, between two of its batches; A after the rollback.
        expected = r"^A*B*$" if p == 0 else r"^A+$"
        assert re.match(expected, seq), (p, topic, partition, seq)
