"""``streamer worker``: run one Faust worker of the scoring pipeline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import click

from streamer.aggregate import AggregateUnavailable, TrendStore
from streamer.cli.common import fail, settings_with
from streamer.cli.supervise import NEEDS_OPERATOR, child_argv, is_child, supervise
from streamer.score.base import ScorerError
from streamer.settings import Settings

log = logging.getLogger(__name__)


async def _check_redis(settings: Settings) -> None:
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        await store.check()
    finally:
        await store.close()


def _is_transient(exc: BaseException) -> bool:
    """A server that did not answer (it may come back), not one that refused us."""
    from streamer.kafka import KafkaSecurityError

    if isinstance(exc, KafkaSecurityError | AggregateUnavailable):
        return exc.transient
    return isinstance(exc, OSError | asyncio.TimeoutError)


async def _until_reachable(settings: Settings, what: str,
                           attempt: Callable[[], Awaitable[object]]) -> None:
    """``attempt()`` until it succeeds; a transient failure is retried with a doubling
    backoff until ``STREAMER_STARTUP_WAIT_S`` has passed, then raised, like any other failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.startup.wait_s
    backoff = settings.startup.retry_backoff_s
    while True:
        try:
            await attempt()
            return
        except Exception as exc:
            if not _is_transient(exc) or loop.time() + backoff > deadline:
                raise
            log.warning("%s: %s; retrying in %.0f s (until STREAMER_STARTUP_WAIT_S=%.0f s "
                        "have passed)", what, exc, backoff, settings.startup.wait_s)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, settings.startup.retry_backoff_max_s)


@click.command()
@click.option("--web-port", type=int, help="Web server port (health, metrics).")
@click.option("--scorer", type=click.Choice(["auto", "baseline", "onnx", "torch"]),
              help="Scorer [default: $STREAMER_SCORER or auto].")
@click.option("--worker-id", help="Name in metrics and latency reports.")
@click.option("--loglevel", default="info", show_default=True)
def worker(web_port: int | None, scorer: str | None, worker_id: str | None, loglevel: str) -> None:
    """Consume news and chat, score them, write scored events and Redis trends."""
    # Heavy imports here, not at module level: `streamer --help` stays fast.
    from agents.app import create_app
    from agents.runtime import Runtime
    from agents.worker import Worker, default_worker_id
    from streamer.kafka import KafkaSecurityError, ensure_topics
    from streamer.logs import configure_logging
    from streamer.score.select import load_scorer
    from streamer.training.quick import build_if_missing

    settings = settings_with(web_port=web_port, scorer=scorer, worker_id=worker_id)
    if settings.worker.max_restarts > 0 and not is_child():
        configure_logging(loglevel, settings.worker.log_format, worker="supervisor",
                          text_format="[%(asctime)s] [supervisor] [%(levelname)s] %(message)s")
        raise SystemExit(supervise(child_argv(), settings))
    if settings.worker.log_format == "json":  # Faust's own set-up takes over later
        configure_logging(loglevel, "json", worker=default_worker_id(settings.worker.id))
    if settings.web.public and settings.web.token is None:
        fail(f"the web server would listen on {settings.web.host} without a token",
             "set STREAMER_WEB_TOKEN (clients send 'Authorization: Bearer <token>'), or "
             "bind it to 127.0.0.1 with STREAMER_WEB_HOST", code=NEEDS_OPERATOR)
    # Faust runs on the thread's default loop; set it up front and reuse it.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    kafka_hint = "start it with `streamer stack up` or set KAFKA_BOOTSTRAP"
    try:
        loop.run_until_complete(_until_reachable(
            settings, "Kafka", lambda: asyncio.wait_for(ensure_topics(settings), 60)))
    except KafkaSecurityError as exc:
        # Refused credentials need an operator; a broker that did not answer may come back.
        fail(str(exc), kafka_hint if exc.transient else None,
             code=1 if exc.transient else NEEDS_OPERATOR)
    except Exception as exc:
        fail(f"Kafka at {settings.kafka.bootstrap} did not answer: {exc!r}", kafka_hint)
    try:
        loop.run_until_complete(_until_reachable(settings, "Redis",
                                                 lambda: _check_redis(settings)))
    except AggregateUnavailable as exc:
        fail(str(exc), code=1 if exc.transient else NEEDS_OPERATOR)
    try:
        # Only the runtime's scoring pool holds the scorer (no local here, which would
        # live as long as the worker): a model upgrade can then free it.
        runtime = Runtime.build(settings, load_scorer(settings, build_if_missing))
    except ScorerError as exc:
        fail(str(exc), code=NEEDS_OPERATOR)
        return
    app = create_app(runtime)
    log.info("worker %s starting with scorer %s", runtime.worker_id, runtime.scorer.name)
    try:
        Worker(app, loglevel=loglevel, loop=loop,
               shutdown_timeout_s=settings.worker.shutdown_timeout_s,
               log_format=settings.worker.log_format,
               worker_id=runtime.worker_id).execute_from_commandline()
    except SystemExit as exc:
        if exc.code and runtime.needs_operator:
            raise SystemExit(NEEDS_OPERATOR) from exc
        raise
