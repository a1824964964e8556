"""``streamer bench costs``: what one event costs Redis, Kafka and the worker's CPU.

Its own module: ``bench_cmd.py`` only registers it (docs/SCALING.md uses its figures).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from rich.table import Table

from streamer.cli.common import console, fail, run, settings_with


@click.command("costs")
@click.option("--messages", "n", type=click.IntRange(min=1), default=4000, show_default=True,
              help="Messages of the seeded demo stream (news and chat in the demo's mix).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=200.0,
              show_default=True, help="Offered msg/s; keep it below the worker's capacity.")
@click.option("--idle-s", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Idle interval first: each counter's background rate, taken off.")
@click.option("--partitions", type=click.IntRange(min=1), default=4, show_default=True,
              help="Partitions of each input topic.")
@click.option("--variant", default="adaptive", show_default=True,
              help="The worker's batching: adaptive or fixed-SIZExWAITms.")
@click.option("--private", is_flag=True, help="Start a Kafka and a Redis of the run's own on "
              "free ports (clean counters: nothing else uses them), stopped after.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for costs-DATE.json and the worker's log [default: bench-out].")
def costs_bench(n: int, rate: float, idle_s: float, partitions: int, variant: str,
                private: bool, seed: int, out: Path | None) -> None:
    """Per event: Redis commands (by command), bytes and memory, Kafka bytes per topic, the
    worker's CPU seconds (so msg/s per worker core), from the servers' own counters around
    one real worker run on a seeded stream."""
    from streamer.bench.costs import CostPlan, as_rows, measure_costs, private_stack, write
    from streamer.bench.pipeline.errors import BenchError

    base = settings_with()
    out = out or Path("bench-out")
    plan = CostPlan(messages=n, rate=rate, idle_s=idle_s, partitions=partitions,
                    variant=variant, seed=seed, private=private)
    command = shlex.join(["streamer", *sys.argv[1:]])

    def say(msg: str) -> None:
        console.print(f"[dim]{msg}[/]", highlight=False)

    try:
        if private:
            with private_stack(base, say) as (settings, broker_pid):
                costs = run(measure_costs(settings, plan, out / "logs", command=command,
                                                  broker_pid=broker_pid, say=say))
        else:
            costs = run(measure_costs(base, plan, out / "logs", command=command,
                                              say=say))
    except BenchError as exc:
        fail(str(exc), "start the local stack: streamer stack up (or use --private)")
    summary = Table(title=f"Per event: {costs.consumed:,} events at {rate:g} msg/s in "
                    f"{costs.run_s:g} s, after a warm-up of {plan.warmup:,} (in all "
                    f"{costs.scored:,} scored, {costs.dead_lettered:,} dead-lettered)")
    for col in ("what", "per event", "note"):
        summary.add_column(col, justify="right" if col == "per event" else "left")
    for row in as_rows(costs):
        summary.add_row(*row)
    console.print(summary)
    redis = Table(title="Redis commands (INFO commandstats, idle background taken off)")
    for col in ("command", "calls", "per event", "us per event", "idle calls/s"):
        redis.add_column(col, justify="left" if col == "command" else "right")
    for c in costs.redis_commands:
        redis.add_row(c.command, f"{c.calls:,}", f"{c.per_event:.4f}",
                      f"{c.usec_per_event:.3f}", f"{c.idle_per_s:.2f}")
    console.print(redis)
    keys = Table(title=f"Redis memory by key family (MEMORY USAGE; buckets of "
                 f"{costs.bucket_seconds} s kept {costs.bucket_ttl_s} s); used_memory "
                 f"{costs.redis_memory_delta:+,} B, keys {costs.redis_keys_delta:+,}")
    for col in ("family", "keys", "bytes", "bytes/key", "fields", "bytes/event"):
        keys.add_column(col, justify="left" if col == "family" else "right")
    for f in costs.key_families:
        keys.add_row(f.family, f"{f.keys:,}", f"{f.bytes:,}", f"{f.bytes_per_key:,.0f}",
                     "-" if f.fields is None else f"{f.fields:,}",
                     f"{f.bytes / max(costs.retained_events, 1):,.1f}")
    console.print(keys)
    kafka = Table(title=f"Kafka bytes written (log sizes from the brokers; RF "
                  f"{costs.replication_factor})")
    for col in ("topic", "role", "bytes", "per event"):
        kafka.add_column(col, justify="left" if col in ("topic", "role") else "right")
    for t in costs.kafka_topics:
        kafka.add_row(t.topic, t.role, f"{t.bytes:,}", f"{t.per_event:,.1f}")
    console.print(kafka)
    for note in costs.notes:
        console.print(f"- {note}", highlight=False)
    console.print(f"wrote {write(costs, out)}")
