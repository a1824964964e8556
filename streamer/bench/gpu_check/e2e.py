"""One worker end to end, for the GPU check: Kafka in, scored, Redis updated.

It reuses ``streamer bench pipeline``'s pieces as they are: a worker process in its own
namespace (topics, consumer group, Redis prefix; removed afterwards), the demo messages,
the librdkafka load generator and the hold step, whose latency is the difference of the
worker's HDR histograms before and after. Three steps: a small burst that warms the worker
up (model, batches, connections), a burst sized to last about ``burst_s`` at the warm-up's
rate, sent as fast as possible (its drain rate is the throughput), then a fixed offered
load at ``share`` of that rate for ``hold_s`` (the end-to-end and per-stage latency).
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import orjson

from streamer.bench.gpu_check.results import E2eResult
from streamer.bench.load import generator
from streamer.bench.pipeline.errors import BenchError
from streamer.bench.pipeline.hold import hold
from streamer.bench.pipeline.messages import Messages
from streamer.bench.pipeline.preflight import check_stack
from streamer.bench.pipeline.processes import Say, Session
from streamer.bench.pipeline.results import Plan
from streamer.bench.pipeline.variants import Variant, variant
from streamer.settings import Settings


def _model_info(port: int, settings: Settings) -> dict[str, str]:
    """The worker's own word on what it scores with (``/api/model``)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/model")
    if settings.web.token is not None:
        request.add_header("Authorization", f"Bearer {settings.web.token.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            data = orjson.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise BenchError(f"the worker's /api/model did not answer ({exc})") from exc
    return {str(k): str(v) for k, v in data.items()}


async def run_e2e(base: Settings, bundle: Path, logs: Path, *, scorer: str = "onnx",
                  bundle_variant: str = "auto", warmup: int = 200, burst_s: float = 5.0,
                  max_burst: int = 60_000, hold_s: float = 10.0, share: float = 0.5,
                  partitions: int = 4, say: Say | None = None) -> E2eResult:
    say = say or print
    await check_stack(base)
    env = {
        "STREAMER_SCORER": scorer,
        "STREAMER_BUNDLE_DIR": str(bundle),
        "STREAMER_BUNDLE_VARIANT": bundle_variant,
        # TensorRT builds an engine per input shape, and a worker's batches come in many
        # sizes: the run would go to engine builds. ONNX Runtime CUDA here; the TensorRT
        # rows are in the models benchmark.
        "STREAMER_ORT_TENSORRT": "false",
        **variant("adaptive").env,
    }
    v = Variant("gpu-check", "ours", f"one worker, adaptive batching, scorer {scorer}", env)
    plan = Plan(variants=[v.name], partitions=partitions, duration_s=hold_s)
    session = Session(base, v, plan, logs, None, say)
    messages = Messages(plan.seed)
    t0 = time.monotonic()
    say(f"starting one worker on {bundle} (scorer {scorer}, variant {bundle_variant})")
    await session.start()
    try:
        model = await asyncio.to_thread(_model_info, session.port, base)
        say(f"the worker scores with {model.get('scorer')} ({model.get('label')})")
        warm = await hold(session, messages, rate=None, n=warmup, phase="probe", load="warm-up",
                          drain_timeout=120.0)
        if warm.completed < warm.sent:
            raise BenchError(f"the worker completed {warm.completed} of the {warm.sent} warm-up "
                             f"messages ({session.log})")
        estimate = warm.completed_rate or 100.0
        n = int(min(max_burst, max(warmup, round(estimate * burst_s))))
        burst = await hold(session, messages, rate=None, n=n, phase="probe", load="burst",
                           expect_rate=estimate, drain_timeout=max(60.0, 6 * burst_s))
        if not burst.completed_rate or burst.completed < burst.sent:
            raise BenchError(f"the worker completed {burst.completed} of the {burst.sent} "
                             f"burst messages ({session.log})")
        offered = round(share * burst.completed_rate, 1)
        lat = await hold(session, messages, rate=offered, n=max(1, round(offered * hold_s)),
                         phase="latency", load=f"{share:.0%} of the burst's rate")
    finally:
        await session.stop()
    return E2eResult(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), bundle=str(bundle),
        scorer=model.get("scorer", ""), model=model, worker_env=env,
        load_generator=generator(base), partitions=partitions, warmup=warm, burst=burst,
        hold=lat, throughput_msgs_per_s=burst.completed_rate,
        wall_s=round(time.monotonic() - t0, 1),
    )
