"""Before the first step: the stack answers, and what each pipeline will score with."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from streamer.aggregate import AggregateUnavailable, TrendStore
from streamer.bench.pipeline.errors import BenchError, StackDown
from streamer.settings import Settings


async def check_stack(settings: Settings, timeout: float = 10.0) -> None:
    """Raise StackDown (saying to run ``streamer stack up``) unless Kafka and Redis answer."""
    from aiokafka.admin import AIOKafkaAdminClient

    from streamer.kafka.security import client_options, start_client

    hint = "start the local stack with `streamer stack up` (or point KAFKA_BOOTSTRAP / " \
           "REDIS_URL at running servers)"
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        await asyncio.wait_for(store.check(), timeout)
    except AggregateUnavailable as exc:  # its message says what to do
        raise StackDown(str(exc)) from exc
    except (TimeoutError, OSError) as exc:
        raise StackDown(f"Redis at {settings.redis.url} does not answer ({exc}); {hint}") from exc
    finally:
        await store.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap,
                                request_timeout_ms=int(timeout * 1000),
                                **client_options(settings.kafka))
    try:
        await asyncio.wait_for(start_client(settings.kafka, admin), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
    except Exception as exc:
        raise StackDown(f"Kafka at {settings.kafka.bootstrap} does not answer "
                        f"({type(exc).__name__}: {exc}); {hint}") from exc
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def naive_bundle(settings: Settings, explicit: Path | None) -> tuple[Path, str, list[str]]:
    """The bundle whose PyTorch teacher the naive pipeline runs, what that is, and notes."""
    from streamer.bundle.locate import default_bundle_path

    notes: list[str] = []
    if explicit is not None:
        path = explicit
    else:
        full = settings.paths.bundles / "full"
        if (full / "_work" / "models" / "teacher").is_dir():
            path = full
        else:
            path = default_bundle_path(settings)
            notes.append(f"the full bundle ({full}) with its PyTorch teacher is absent: the naive "
                         f"pipeline runs the model of {path} instead")
    if not (path / "manifest.json").is_file():
        raise BenchError(f"no model bundle at {path}: build one with "
                         "`streamer models build --profile full`")
    if (path / "_work" / "models" / "teacher").is_dir():
        what = f"the bundle's teacher ({path.name}, transformers PyTorch FP32)"
    else:
        what = (f"the base encoder + fresh heads (transformers PyTorch FP32; {path.name} keeps no "
                "teacher checkpoint)")
        notes.append(f"{path} keeps no PyTorch teacher: the naive pipeline runs the base "
                     "encoder with fresh heads (same architecture, so the same cost)")
    return path, what, notes


def peer_model(settings: Settings) -> str:
    """What the Quix Streams peer runs, or BenchError saying how to install it."""
    from streamer.bench.peer import PeerUnavailable, require_quixstreams
    from streamer.bundle.locate import default_bundle_path

    try:
        version = require_quixstreams()
    except PeerUnavailable as exc:
        raise BenchError(f"{exc}; or leave quix out of --variants") from exc
    if settings.kafka.security_protocol != "PLAINTEXT":
        raise BenchError("the Quix Streams peer runs against a PLAINTEXT broker only (the local "
                         "stack): leave quix out of --variants")
    return (f"Quix Streams {version}, bundle {default_bundle_path(settings)} (the worker's), "
            f"variant {settings.scoring.bundle_variant}, through ONNX Runtime")


def ours_scorer(settings: Settings) -> str:
    if settings.scoring.scorer == "baseline":
        return "scorer: Naive Bayes baseline"
    from streamer.bundle.locate import default_bundle_path

    return (f"scorer {settings.scoring.scorer}: bundle {default_bundle_path(settings)}, variant "
            f"{settings.scoring.bundle_variant}")


def pin_bundle(settings: Settings) -> Settings:
    """``settings`` with the bundle every pipeline of the run loads pinned (STREAMER_BUNDLE_DIR)
    to the one chosen now, when it is complete: a full build finishing mid-run would
    otherwise be the bundle of the workers started after it (and of the bare model), not of
    those before. Unchanged for the baseline scorer, a pinned bundle, or none built yet."""
    from streamer.bundle.locate import default_bundle_path, is_complete_bundle

    if settings.scoring.scorer == "baseline" or settings.scoring.bundle_dir is not None:
        return settings
    path = default_bundle_path(settings)
    return settings.with_env({"STREAMER_BUNDLE_DIR": str(path)}) if is_complete_bundle(
        path) else settings


def bundle_env(settings: Settings) -> dict[str, str]:
    """The pinned bundle as a pipeline process's environment ({} when none is pinned)."""
    path = settings.scoring.bundle_dir
    return {"STREAMER_BUNDLE_DIR": str(path)} if path is not None else {}
