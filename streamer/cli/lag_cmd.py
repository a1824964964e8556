"""``streamer lag``: the consumer group's lag from its committed offsets, per partition.

Read from the broker, not from a worker: it answers when every worker is down.
Exit codes (README.md, "Exit codes"): 0 the total lag is within --max-lag, 1 it is over,
66 a topic is missing, 69 Kafka did not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal

import click
from rich.table import Table

from streamer.cli.common import ExitCode, console, fail, run, settings_with
from streamer.kafka.lag import GroupLag, read_group_lag
from streamer.settings import Settings


def lag_table(read: GroupLag) -> Table:
    t = Table(title=f"Consumer lag of group {read.group!r} (from its committed offsets)")
    t.add_column("topic")
    for col in ("partition", "committed", "end", "lag"):
        t.add_column(col, justify="right")
    for p in read.partitions:
        t.add_row(p.topic, str(p.partition), "none" if p.committed is None else str(p.committed),
                  str(p.end), f"[bold yellow]{p.lag}[/]" if p.lag else "0")
    t.add_section()
    t.add_row("total", "", "", "", str(read.total))
    return t


@click.command()
@click.option("--group", default=None,
              help="Consumer group [default: the workers' group, STREAMER_APP_ID].")
@click.option("--topic", "topics", multiple=True,
              help="Topic to read (repeatable) [default: the input topics].")
@click.option("--max-lag", type=click.IntRange(min=0), default=None,
              help="Exit 1 when the total lag is over this many records "
              "[default: STREAMER_WORKER_LAG_MAX_RECORDS].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
@click.option("--serve", is_flag=True,
              help="Run as a Prometheus exporter: serve the lag on /metrics, read from "
              "Kafka every STREAMER_WORKER_LAG_EXPORT_INTERVAL_S, until stopped.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="--serve: the address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="--serve: the port [default: STREAMER_WORKER_LAG_EXPORT_PORT].")
def lag(group: str | None, topics: tuple[str, ...], max_lag: int | None,
        as_json: bool, serve: bool, host: str, port: int | None) -> None:
    """Consumer lag per topic and partition: committed offset, end offset, lag.

    Exit code 0: total lag within --max-lag; 1: over it; 66: a topic is missing;
    69: Kafka did not answer. With --serve: an exporter that runs until SIGTERM or
    Ctrl-C (exit 0).
    """
    settings = settings_with()
    if serve:
        _serve(settings, host, port or settings.worker.lag_export_port, topics or None, group)
        return
    limit = settings.worker.lag_max_records if max_lag is None else max_lag
    read = run(read_group_lag(settings, topics or None, group))
    if read.missing_topics:
        fail(f"no such topic on {settings.kafka.bootstrap}: {', '.join(read.missing_topics)}",
             "check --topic, or STREAMER_TOPIC_NEWS / STREAMER_TOPIC_CHAT",
             ExitCode.NOT_FOUND)
    over = read.total > limit
    if as_json:
        click.echo(json.dumps({
            "group": read.group, "total": read.total, "max_lag": limit, "over": over,
            "partitions": [{"topic": p.topic, "partition": p.partition,
                            "committed": p.committed, "end": p.end, "lag": p.lag}
                           for p in read.partitions],
        }))
    else:
        console.print(lag_table(read))
        if over:
            console.print(f"[bold yellow]lag {read.total} is over {limit}[/] "
                          "(--max-lag / STREAMER_WORKER_LAG_MAX_RECORDS): are workers "
                          "running and keeping up? (`streamer worker`)")
    if over:
        raise click.exceptions.Exit(int(ExitCode.FAILED))


def _serve(settings: Settings, host: str, port: int, topics: tuple[str, ...] | None,
           group: str | None) -> None:
    from prometheus_client import start_http_server

    from streamer.kafka.lag_exporter import LagMetrics, export_lag

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    metrics = LagMetrics()
    try:
        server, _ = start_http_server(port, host, registry=metrics.registry)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
             "pick a free port with --port or STREAMER_WORKER_LAG_EXPORT_PORT",
             ExitCode.UNAVAILABLE)
    console.print(f"serving the lag of group {group or settings.worker.app_id!r} on "
                  f"http://{host}:{port}/metrics, read every "
                  f"{settings.worker.lag_export_interval_s:g} s; Ctrl-C stops")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await export_lag(settings, metrics, stop, topics, group)

    try:
        asyncio.run(main())
    finally:
        with contextlib.suppress(Exception):
            server.shutdown()
