"""``streamer stack up|down|status|fetch``: the local Kafka + Redis servers (no Docker)."""

from __future__ import annotations

import time
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from streamer.cli.common import ExitCode, fail
from streamer.devstack import LocalKafka, LocalRedis, StackError, StackStatus, stack_status
from streamer.settings import get_settings

_console = Console()


def _fail(exc: StackError) -> NoReturn:
    """One line (the first of the message); a server's log tail, when given, below it."""
    first, _, rest = str(exc).partition("\n")
    fail(first, code=ExitCode.FAILED, detail=rest)


def _status_table(status: StackStatus) -> Table:
    table = Table(title="local stack", title_justify="left")
    for column in ("server", "state", "pid", "address", "version"):
        # no_wrap: addresses are meant to be copied; the data path may fold instead.
        table.add_column(column, no_wrap=True)
    table.add_column("data", overflow="fold")
    rows = [
        ("kafka", status.kafka.running, status.kafka.pid, status.kafka.bootstrap,
         status.kafka.version, status.kafka.data_dir),
        ("redis", status.redis.running, status.redis.pid, status.redis.url,
         status.redis.version or "not installed", status.redis.data_dir),
    ]  # fmt: skip
    for name, running, pid, address, version, data in rows:
        state = "[green]running[/]" if running else "[dim]stopped[/]"
        table.add_row(name, state, str(pid or "-"), address, version, str(data))
    return table


@click.group("stack")
def stack() -> None:
    """Run a real Kafka broker and redis-server locally (data under STREAMER_DATA_DIR)."""


@stack.command("up")
def up() -> None:
    """Start Redis and Kafka (no-op for those already running); print where they listen."""
    settings = get_settings()
    try:
        with _console.status("starting redis-server..."):
            t0 = time.monotonic()
            redis_url = LocalRedis(settings).start()
            redis_s = time.monotonic() - t0
        kafka_msg = f"starting Kafka {settings.stack.kafka_version} (the first run fetches jars)..."
        with _console.status(kafka_msg):
            t0 = time.monotonic()
            bootstrap = LocalKafka(settings).start()
            kafka_s = time.monotonic() - t0
    except StackError as exc:
        _fail(exc)
    _console.print(f"[green]redis[/] listening on [bold]{redis_url}[/] ({redis_s:.1f}s)")
    _console.print(f"[green]kafka[/] listening on [bold]{bootstrap}[/] ({kafka_s:.1f}s)")
    _console.print(f"data: {settings.paths.data_dir}   stop with: streamer stack down",
                   highlight=False)
    if settings.kafka.security_protocol == "SASL_SSL" or redis_url.startswith("rediss://"):
        ca = settings.paths.data_dir / "tls" / "ca.pem"
        _console.print(f"TLS: clients trust {ca} (STREAMER_KAFKA_SSL_CAFILE, "
                       "STREAMER_REDIS_TLS_CA_FILE)", highlight=False)


@stack.command("down")
def down() -> None:
    """Stop Kafka and Redis (data is kept)."""
    settings = get_settings()
    errors: list[StackError] = []
    for name, server in (("redis", LocalRedis(settings)), ("kafka", LocalKafka(settings))):
        was_running = server.is_running()
        try:
            server.stop()
        except StackError as exc:
            errors.append(exc)
            continue
        _console.print(f"{name}: {'stopped' if was_running else 'was not running'}")
    if errors:
        _fail(errors[0])


@stack.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(as_json: bool) -> None:
    """Show whether the local servers run, their pids, addresses and data dirs."""
    current = stack_status(get_settings())
    if as_json:
        click.echo(current.model_dump_json(indent=2))
    else:
        _console.print(_status_table(current))


@stack.command("fetch")
def fetch() -> None:
    """Download the Kafka jars into the cache (CI warm-up); needs mvn and Java >= 17."""
    settings = get_settings()
    try:
        with _console.status(f"fetching Kafka {settings.stack.kafka_version} jars with mvn..."):
            libs = LocalKafka(settings).fetch_jars()
    except StackError as exc:
        _fail(exc)
    _console.print(f"jars in {libs}", highlight=False)
