"""``streamer eval-alerts``: replay a labelled stream through the pipeline, score alerts.

``streamer eval-stream DIR`` writes such a stream (hours of calm demo market plus
spikes of several sizes); ``streamer demo --out DIR --no-send`` writes a short one
(news.jsonl, chat.jsonl, spikes.json), which eval-alerts reads as well.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import click
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streamer.cli.common import console, fail, number_list, settings_with
from streamer.devstack import free_port
from streamer.evaluation.judge import EvalReport
from streamer.evaluation.pipeline_run import (
    EvalResult,
    Worker,
    collect,
    namespace,
    offline_alerts,
    prepare,
    replay,
    score,
    scored_buckets,
    wait_for,
)
from streamer.evaluation.synthetic import (
    StreamSpec,
    generate,
    read_labels,
    read_stream,
    spike_plan,
    write_labels,
    write_stream,
)


def report_tables(report: EvalReport) -> tuple[Table, Table]:
    spikes = Table(title="Labelled spikes")
    numeric = ("messages", "per min", "neg share before", "during", "x", "delay (event s)")
    for col in ("scope", "key", "onset (UTC)", *numeric[:5], "caught", numeric[5],
                "severity"):
        spikes.add_column(col, justify="right" if col in numeric else "left")
    covered = {id(s) for s in report.qualifying()}

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.0%}"

    for s in report.spikes:
        spikes.add_row(
            s.scope, s.key, f"{s.start:%Y-%m-%d %H:%M:%S}", str(s.messages), f"{s.per_min:.0f}",
            pct(s.baseline_share), pct(s.spike_share),
            "-" if s.ratio is None else f"{s.ratio:.1f}",
            "[green]caught[/]" if s.caught else
            ("[red]MISSED[/]" if id(s) in covered else "[yellow]missed[/] (not covered)"),
            f"{s.delay_s:.1f}" if s.delay_s is not None else "-", s.severity or "-",
        )
    summary = Table(title="Summary", show_header=False)
    summary.add_column("")
    summary.add_column("", justify="right")
    q = report.qualifying()
    summary.add_row("spikes caught", f"{report.caught} of {len(report.spikes)}")
    summary.add_row(">= 20 msgs/min and >= 3x share: caught",
                    f"{sum(s.caught for s in q)} of {len(q)}")
    med = report.median_delay_s
    summary.add_row("median detection delay", f"{med:.1f} s" if med is not None else "-")
    if report.delays:
        summary.add_row("p90 detection delay",
                        f"{statistics.quantiles(report.delays, n=10)[-1]:.1f} s"
                        if len(report.delays) > 1 else f"{report.delays[0]:.1f} s")
    summary.add_row("calm stream", f"{report.calm_hours:.2f} h")
    for scope in ("topic", "ticker"):
        n = sum(1 for f in report.false_alerts if f.scope == scope)
        summary.add_row(f"false alerts ({scope})",
                        f"{n} = {report.false_per_hour(scope) * 6:.2f} per 6 h")
    summary.add_row("alerts (fired + escalated)", str(report.alerts))
    return spikes, summary


def targets_met(report: EvalReport) -> bool:
    q = report.qualifying()
    med = report.median_delay_s
    # A calm-only stream (no spikes) is judged on false alerts alone.
    return (all(s.caught for s in q) and (med is None or med <= 20.0)
            and all(report.false_per_hour(sc) * 6 <= 1.0 for sc in ("topic", "ticker")))


@click.command("eval-alerts")
@click.argument("streams", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--labels", required=True, type=click.Path(exists=True, dir_okay=False,
                                                         path_type=Path),
              help="spikes.json: the labelled spikes (scope, key, start, end, messages).")
@click.option("--speed", type=float, default=100.0, show_default=True,
              help="Event time per wall-clock second; 0 = as fast as possible.")
@click.option("--timeout", type=float, default=900.0, show_default=True,
              help="Seconds to wait for the worker to finish after the replay.")
@click.option("--offline-check/--no-offline-check", default=True, show_default=True,
              help="Also run the detector offline and compare alert ids.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the full result (JSON) here.")
@click.option("--check", is_flag=True, help="Exit 1 when a target is not met.")
def eval_alerts(streams: tuple[Path, ...], labels: Path, speed: float, timeout: float,
                offline_check: bool, out: Path | None, check: bool) -> None:
    """Replay STREAMS (JSONL, in event-time order) through Kafka, a worker and Redis;
    report each labelled spike as caught or missed with its delay in event time, and
    false alerts per hour on the calm parts."""
    base = settings_with()
    lines = read_stream(streams)
    spikes = read_labels(labels)
    if not lines:
        fail("the stream is empty")
    times = [ln.event_time.timestamp() for ln in lines if ln.event_time is not None]
    ns = namespace(base, base.paths.data_dir / "eval", web_port=free_port())
    console.print(f"namespace [bold]{ns.uid}[/]: topics news-{ns.uid}, chat-{ns.uid}, "
                  f"alerts-{ns.uid}; Redis prefix ev{ns.uid}")
    log = base.paths.data_dir / "logs" / f"eval-{ns.uid}.log"
    worker = Worker(ns, log)
    try:
        asyncio.run(prepare(ns))
        t = time.monotonic()
        worker.start().wait_ready()
        console.print(f"worker ready in {time.monotonic() - t:.1f}s (log {log})")
        span_h = (max(times) - min(times)) / 3600
        console.print(f"replaying {len(lines)} messages, {span_h:.2f} h of event time, "
                      f"at {'full speed' if not speed else f'{speed:g}x'}")
        bar = Progress(TextColumn("[bold]replaying"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=console)
        with bar:
            task = bar.add_task("send", total=len(lines))
            seconds = asyncio.run(replay(ns.settings, lines, speed or None,
                                         lambda n: bar.update(task, completed=n)))
        console.print(f"sent in {seconds:.1f}s; waiting for the worker and the detector")
        cursor = asyncio.run(wait_for(ns.settings, len(lines), max(times), timeout=timeout,
                                      worker=worker))
        records = asyncio.run(collect(ns.settings))
        scored = asyncio.run(scored_buckets(ns.settings, spikes))
    except RuntimeError as exc:
        fail(str(exc))
    finally:
        worker.stop()
    report = score(spikes, records, lines, ns.settings, scored)
    result = EvalResult(report=report, alerts=records, messages=len(lines), speed=speed or None,
                        replay_seconds=seconds, event_hours=span_h)
    if offline_check:
        offline = [d.alert_id for d in offline_alerts(ns.settings, lines, cursor)]
        pipeline = [r.alert_id for r in records]
        result.offline_match = sorted(offline) == sorted(pipeline)
        result.offline_only = sorted(set(offline) - set(pipeline))
        result.pipeline_only = sorted(set(pipeline) - set(offline))
    spikes_t, summary = report_tables(report)
    console.print(spikes_t)
    if result.offline_match is not None:
        summary.add_row("pipeline == offline detector",
                        "[green]yes[/]" if result.offline_match else
                        f"[red]no[/] (offline only {len(result.offline_only)}, "
                        f"pipeline only {len(result.pipeline_only)})")
    console.print(summary)
    met = targets_met(report)
    console.print(Panel.fit("[green]targets met[/]" if met else "[red]targets NOT met[/]",
                            title="caught >= 20/min, >= 3x share spikes, median delay <= 20 s, "
                            "<= 1 false alert per 6 h per scope"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(result.model_dump_json(indent=2))
        console.print(f"wrote {out}")
    if check and not met:
        raise click.exceptions.Exit(1)


@click.command("eval-stream")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--hours", type=float, default=6.0, show_default=True,
              help="Event-time span of the stream.")
@click.option("--sizes", default="20,30,60,120", show_default=True,
              help="Spike sizes (extra negative news per minute), cycled.")
@click.option("--every", type=float, default=40.0, show_default=True,
              help="Minutes between spike onsets (0: no spikes, a calm stream).")
@click.option("--news-per-min", type=float, default=40.0, show_default=True)
@click.option("--chat-per-min", type=float, default=120.0, show_default=True)
def eval_stream(out: Path, seed: int, hours: float, sizes: str, every: float,
                news_per_min: float, chat_per_min: float) -> None:
    """Write OUT/stream.jsonl and OUT/spikes.json: calm demo market with labelled spikes."""
    size_list = number_list(sizes, float, "--sizes")
    minutes = hours * 60
    plan = spike_plan(minutes, size_list, every_min=every, seed=seed) if every > 0 else []
    spec = StreamSpec(seed=seed, minutes=minutes, news_per_min=news_per_min,
                      chat_per_min=chat_per_min, spikes=plan)
    messages, labels = generate(spec)
    n = write_stream(out / "stream.jsonl", messages)
    write_labels(out / "spikes.json", labels)
    console.print(f"wrote {n} messages and {len(labels)} spike labels "
                  f"({len(plan)} spikes x topic+ticker) to {out}")
