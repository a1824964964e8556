"""``streamer worker``: run one Faust worker of the scoring pipeline."""

from __future__ import annotations

import asyncio
import logging

import click

from streamer.aggregate import AggregateUnavailable, TrendStore
from streamer.cli.common import fail, settings_with
from streamer.cli.supervise import NEEDS_OPERATOR, child_argv, is_child, supervise
from streamer.score.base import ScorerError
from streamer.settings import Settings

log = logging.getLogger(__name__)


async def _check_redis(settings: Settings) -> None:
    store = TrendStore.connect(settings)
    try:
        await store.check()
    finally:
        await store.close()


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
    from agents.worker import Worker
    from streamer.kafka import KafkaSecurityError, ensure_topics
    from streamer.score.select import load_scorer

    settings = settings_with(web_port=web_port, scorer=scorer, worker_id=worker_id)
    if settings.worker_max_restarts > 0 and not is_child():
        logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s] [supervisor] "
                            "[%(levelname)s] %(message)s")
        raise SystemExit(supervise(child_argv(), settings))
    if settings.web_public and settings.web_token is None:
        fail(f"the web server would listen on {settings.web_host} without a token",
             "set STREAMER_WEB_TOKEN (clients send 'Authorization: Bearer <token>'), or "
             "bind it to 127.0.0.1 with STREAMER_WEB_HOST", code=NEEDS_OPERATOR)
    # Faust runs on the thread's default loop; set it up front and reuse it.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(ensure_topics(settings), 60))
    except KafkaSecurityError as exc:
        fail(str(exc), code=NEEDS_OPERATOR)
    except Exception as exc:
        fail(f"Kafka at {settings.kafka_bootstrap} did not answer: {exc}",
             "start it with `streamer stack up` or set KAFKA_BOOTSTRAP")
    try:
        loop.run_until_complete(_check_redis(settings))
    except AggregateUnavailable as exc:
        # Wrong credentials need an operator; a Redis that did not answer may come back.
        fail(str(exc), code=1 if exc.transient else NEEDS_OPERATOR)
    try:
        live = load_scorer(settings)
    except ScorerError as exc:
        fail(str(exc), code=NEEDS_OPERATOR)
    runtime = Runtime.build(settings, live)
    app = create_app(runtime)
    log.info("worker %s starting with scorer %s", runtime.worker_id, live.name)
    try:
        Worker(app, loglevel=loglevel, loop=loop).execute_from_commandline()
    except SystemExit as exc:
        if exc.code and runtime.needs_operator:
            raise SystemExit(NEEDS_OPERATOR) from exc
        raise
