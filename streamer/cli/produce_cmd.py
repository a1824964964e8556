"""``streamer replay`` and ``streamer demo``: put messages on the input topics."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable
from pathlib import Path

import click
import orjson
from pydantic import ValidationError

from streamer.cli.common import ExitCode, console, fail, run, settings_with
from streamer.produce.demo import DemoConfig, DemoGenerator, DemoMessage, labelled_rows
from streamer.produce.replay import count_lines, to_messages
from streamer.produce.sender import Outgoing, send_all
from streamer.settings import Settings


async def missing_topics(settings: Settings, topics: list[str]) -> list[str]:
    """Those of ``topics`` the broker does not have, in order."""
    from aiokafka.admin import AIOKafkaAdminClient

    from streamer.kafka.security import client_options, start_client

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap,
                                **client_options(settings.kafka))
    try:
        await start_client(settings.kafka, admin)
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [t for t in dict.fromkeys(topics) if t not in existing]


def require_topics(settings: Settings, topics: list[str], create: bool) -> None:
    """Producing to a topic that does not exist is an error (Kafka would create it on the
    first record, with the broker's defaults, and a typo would look like success), unless
    ``create``: then it is created as the app creates its topics."""
    missing = run(missing_topics(settings, topics))
    if not missing:
        return
    if create:
        from streamer.kafka import ensure_topics

        run(ensure_topics(settings, missing))
        console.print(f"created topic(s) {', '.join(missing)}")
        return
    names = ", ".join(repr(t) for t in missing)
    inputs = set(settings.topics.inputs)
    fail(f"topic {names} does not exist on Kafka at {settings.kafka.bootstrap}"
         if len(missing) == 1 else
         f"topics {names} do not exist on Kafka at {settings.kafka.bootstrap}",
         # The input topics: a worker creates them when it starts. Any other: a typo?
         "start a worker (`streamer worker` creates its topics), or pass --create-topic"
         if set(missing) <= inputs else
         f"check the name (the worker reads {settings.topics.news!r} and "
         f"{settings.topics.chat!r}), or pass --create-topic to create it",
         ExitCode.NOT_FOUND)


_CREATE_TOPIC = click.option(
    "--create-topic", is_flag=True,
    help="Create the topic(s) when missing, as the app creates its own (the STREAMER_TOPIC_* "
    "settings); without it, a topic that does not exist is an error.")


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", required=True, help="Target topic (e.g. news or chat).")
@click.option("--rate", type=float, default=500.0, show_default=True,
              help="Messages per second; 0 = as fast as possible.")
@click.option("--rebase/--keep-times", default=False, show_default=True,
              help="Shift event times so the first message is 'now'.")
@_CREATE_TOPIC
def replay(file: Path, topic: str, rate: float, rebase: bool, create_topic: bool) -> None:
    """Produce a JSONL or CSV FILE into Kafka at a fixed rate."""
    settings = settings_with()
    require_topics(settings, [topic], create_topic)
    report = run(send_all(
        settings, to_messages(file, topic, rebase=rebase), rate=rate or None,
        total=count_lines(file),
    ))
    console.print(f"sent {report.sent} messages to {topic} in {report.seconds:.1f}s")


def demo_outgoing(settings: Settings, messages: list[DemoMessage]) -> list[Outgoing]:
    topics = {"news": settings.topics.news, "chat": settings.topics.chat}
    return [Outgoing(topics[m.kind], None, m.value) for m in messages]


def demo_config(settings: Settings, **options: object) -> DemoConfig:
    """The demo stream of the command line: a fresh run tag each time, so running the demo
    again on the same stack is new traffic, not duplicates dead-lettered by the worker."""
    values = {k: v for k, v in options.items() if v is not None}
    values.setdefault("run_tag", uuid.uuid4().hex[:8])
    try:
        return DemoConfig(
            max_text_chars=settings.input.max_text_chars,
            max_message_bytes=settings.input.max_message_bytes,
            **values,
        )
    except ValidationError as exc:  # e.g. a --spike-topic the demo writes no news on
        raise click.UsageError("; ".join(
            f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors()
        )) from None


def demo_options(f: Callable[..., None]) -> Callable[..., None]:
    for option in reversed([
        click.option("--seed", type=int, help="Random seed (default 7)."),
        click.option("--minutes", type=float, help="Event-time span (default 10)."),
        click.option("--news-per-min", type=float, help="Calm news rate (default 40)."),
        click.option("--chat-per-min", type=float, help="Calm chat rate (default 120)."),
        click.option("--spike-topic", help="Topic of the negative burst (default "
                     "\"Energy | Oil\"; quote names with spaces)."),
        click.option("--spike-ticker", help="Ticker of the negative burst."),
        click.option("--spike-at-min", type=float, help="Burst onset in minutes."),
        click.option("--spike-per-min", type=float, help="Extra negative news per minute."),
        click.option("--bad-fraction", type=float,
                     help="Share of malformed messages (default 0.02)."),
    ]):
        f = option(f)
    return f


@click.command()
@demo_options
@click.option("--rate", type=float, default=0.0, show_default=True,
              help="Messages per second; 0 = as fast as possible.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Also write news.jsonl, chat.jsonl and spikes.json here.")
@click.option("--labelled", type=click.Path(file_okay=False, path_type=Path),
              help="Also write sentiment.csv and topic.csv (text,label: what each message "
              "was generated to be) here, for `streamer models eval`.")
@click.option("--send/--no-send", default=True, show_default=True, help="Produce to Kafka.")
@_CREATE_TOPIC
def demo(rate: float, out: Path | None, labelled: Path | None, send: bool, create_topic: bool,
         **options: object) -> None:
    """Generate the synthetic market stream (news + chat, an injected negative burst)."""
    settings = settings_with()
    if send:  # before generating: a wrong topic or a stopped broker fails at once
        require_topics(settings, list(settings.topics.inputs), create_topic)
    messages, labels = DemoGenerator(demo_config(settings, **options)).generate()
    if labelled is not None:
        labelled.mkdir(parents=True, exist_ok=True)
        for head, rows in labelled_rows(messages).items():
            with (labelled / f"{head}.csv").open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["text", "label"])
                writer.writerows(rows)
            console.print(f"wrote {len(rows)} labelled rows to {labelled / f'{head}.csv'}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for kind in ("news", "chat"):
            with (out / f"{kind}.jsonl").open("wb") as fh:
                for m in messages:
                    if m.kind == kind:
                        fh.write(m.value + b"\n")
        (out / "spikes.json").write_bytes(
            orjson.dumps([lb.model_dump(mode="json") for lb in labels], option=orjson.OPT_INDENT_2)
        )
        console.print(f"wrote {len(messages)} messages and {len(labels)} spike labels to {out}")
    if send:
        report = run(send_all(settings, demo_outgoing(settings, messages), rate=rate or None,
                              total=len(messages)))
        console.print(f"sent {report.sent} messages {report.by_topic} in {report.seconds:.1f}s")
