"""``streamer eval-alerts``: score a stream's alerts against labels; ``eval-stream`` writes one.

``eval-alerts`` replays a stream through Kafka, a worker and Redis (or, with
``--offline``, scores and detects in-process: the same detector and bucketing, no
servers) and judges the alerts against one of two target sets, chosen by the labels:
synthetic spikes (``streamer eval-stream DIR`` or ``streamer demo --out DIR --no-send``
write them) or real news episodes labelled by a person. Without labels recall is not
measured, and the report says so; false alerts are measured and judged all the same.
A missed target exits 1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import click
from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streamer.cli.common import (
    ExitCode,
    console,
    expected_error,
    fail,
    number_list,
    settings_with,
)
from streamer.detect.core import Buckets
from streamer.devstack import free_port
from streamer.evaluation import offline_run
from streamer.evaluation.judge import EvalReport
from streamer.evaluation.labels import (
    LabelsError,
    LabelSet,
    Review,
    SpanLabel,
    read_labels,
    read_reviews,
)
from streamer.evaluation.pipeline_run import (
    Worker,
    collect,
    namespace,
    offline_alerts,
    prepare,
    read_buckets,
    replay,
    score,
    wait_for,
)
from streamer.evaluation.real import RealReport, judge_real
from streamer.evaluation.render import (
    Verdict,
    alerts_table,
    real_tables,
    real_verdict,
    synthetic_tables,
    synthetic_verdict,
)
from streamer.evaluation.rows import AlertRow, from_record
from streamer.evaluation.synthetic import (
    StreamLine,
    StreamSpec,
    generate,
    read_stream,
    spike_plan,
    write_labels,
    write_stream,
)
from streamer.evaluation.timeline import (
    DEFAULT_MAX_KEYS,
    ChartsUnavailable,
    keys_of_interest,
    require_matplotlib,
    series_for,
    write_timelines,
)
from streamer.settings import Settings

TargetSet = Literal["synthetic", "real"]


class TargetResult(BaseModel):
    name: str
    status: str
    detail: str


class EvalResult(BaseModel):
    """Everything ``eval-alerts --out FILE`` writes."""

    mode: Literal["pipeline", "offline"]
    targets: TargetSet
    labels: str | None
    verdict: list[TargetResult]
    failed: bool
    synthetic: EvalReport | None = None
    real: RealReport | None = None
    alerts: list[AlertRow]
    messages: int
    event_hours: float
    speed: float | None = None
    replay_seconds: float | None = None
    offline_match: bool | None = None
    offline_only: list[str] = []
    pipeline_only: list[str] = []


@dataclass
class Run:
    """What a pipeline replay or an offline run hands to the judges."""

    mode: Literal["pipeline", "offline"]
    settings: Settings
    rows: list[AlertRow]
    messages: int
    buckets: Buckets | None = None  # counts per bucket and scope key, when read
    replay_seconds: float | None = None
    offline_match: bool | None = None
    offline_only: list[str] = field(default_factory=list)
    pipeline_only: list[str] = field(default_factory=list)


def _progress(label: str) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def run_offline(base: Settings, lines: list[StreamLine]) -> Run:
    """Score, bucket and detect in this process (no Kafka, Redis or worker)."""
    with _progress("scoring") as bar:
        task = bar.add_task("score", total=len(lines))
        res = offline_run.run_offline(lines, base,
                                      on_progress=lambda n: bar.update(task, completed=n))
    return Run("offline", base, res.rows, res.messages, buckets=res.buckets)


def run_pipeline(base: Settings, lines: list[StreamLine], *, speed: float, timeout: float,
                 offline_check: bool, bucket_scopes: Iterable[str] | None) -> Run:
    """Replay ``lines`` through Kafka, a worker and Redis in a namespace of their own;
    read the alerts back (and, with ``bucket_scopes``, the counts of those scope kinds)."""
    times = [ln.event_time.timestamp() for ln in lines if ln.event_time is not None]
    ns = namespace(base, base.paths.data_dir / "eval", web_port=free_port())
    console.print(f"namespace [bold]{ns.uid}[/]: topics news-{ns.uid}, chat-{ns.uid}, "
                  f"alerts-{ns.uid}; Redis prefix ev{ns.uid}")
    log = base.paths.data_dir / "logs" / f"eval-{ns.uid}.log"
    worker = Worker(ns, log)
    buckets: Buckets | None = None
    # aiokafka logs each refused connection; the one-line error below says it all.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        asyncio.run(prepare(ns))
        t = time.monotonic()
        worker.start().wait_ready()
        console.print(f"worker ready in {time.monotonic() - t:.1f}s (log {log})")
        console.print(f"replaying {len(lines)} messages, "
                      f"{(max(times) - min(times)) / 3600:.2f} h of event time, "
                      f"at {'full speed' if not speed else f'{speed:g}x'}")
        with _progress("replaying") as bar:
            task = bar.add_task("send", total=len(lines))
            seconds = asyncio.run(replay(ns.settings, lines, speed or None,
                                         lambda n: bar.update(task, completed=n)))
        console.print(f"sent in {seconds:.1f}s; waiting for the worker and the detector")
        cursor = asyncio.run(wait_for(ns.settings, len(lines), max(times), timeout=timeout,
                                      worker=worker))
        records = asyncio.run(collect(ns.settings))
        if bucket_scopes is not None:
            w = ns.settings.aggregate.bucket_seconds
            buckets = asyncio.run(read_buckets(ns.settings, (min(times) - w, max(times)),
                                               bucket_scopes))
    except click.exceptions.Exit:
        raise
    except Exception as exc:  # a server down or refusing us: one line, its exit code
        known = expected_error(exc)
        if known is None and not isinstance(exc, RuntimeError):
            raise
        fail(*(known or (str(exc), None, ExitCode.FAILED)))
    finally:
        worker.stop()
    run = Run("pipeline", ns.settings, [from_record(r) for r in records], len(lines),
              buckets=buckets, replay_seconds=seconds)
    if offline_check:
        offline = [d.alert_id for d in offline_alerts(ns.settings, lines, cursor)]
        pipeline = [r.alert_id for r in records]
        run.offline_match = sorted(offline) == sorted(pipeline)
        run.offline_only = sorted(set(offline) - set(pipeline))
        run.pipeline_only = sorted(set(pipeline) - set(offline))
    return run


def scope_kinds(settings: Settings, rows: Iterable[AlertRow], labels: LabelSet | None
                ) -> list[str]:
    """The scope kinds to judge: those the detector watches, alerts carry or labels name."""
    kinds = {*settings.alerts.scopes, *(r.scope for r in rows)}
    if labels is not None:
        kinds |= {s.scope for s in labels.spans}
    return sorted(kinds - {"all"})


def _read_inputs(labels: Path | None, reviewed: Path | None
                 ) -> tuple[LabelSet | None, dict[str, Review]]:
    try:
        label_set = read_labels(labels) if labels is not None else None
        reviews = read_reviews(reviewed) if reviewed is not None else {}
    except LabelsError as exc:
        fail(str(exc), "fix the file, or leave --labels / --reviewed out", ExitCode.DATA)
        raise AssertionError("unreachable") from exc  # fail() raises
    return label_set, reviews


@click.command("eval-alerts")
@click.argument("streams", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="spikes.json (synthetic spikes: a list of {scope, key, start, end, "
              "messages}) or an episodes file of real news ({episodes: [{name, scope, key, "
              "start, end, evidence}]}); the shape decides. Without it recall is not measured.")
@click.option("--targets", "target_set", type=click.Choice(["auto", "synthetic", "real"]),
              default="auto", show_default=True,
              help="Target set: synthetic spikes or real news; auto follows the labels "
              "(real news when there are none).")
@click.option("--reviewed", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Real news: JSON {episode_id: {verdict: 'negative news' | 'not negative', "
              "note}}, a person's reading of alerts outside the labelled episodes; those "
              "reviewed as negative news do not count against the false-alert budget.")
@click.option("--offline", is_flag=True,
              help="Score and detect in this process (same detector, same bucketing): no "
              "Kafka, Redis or worker; weeks of news in minutes.")
@click.option("--png", "png_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write a timeline PNG per scope key of interest here (needs the charts "
              "extra: pip install -e '.[charts]').")
@click.option("--png-max", type=click.IntRange(1, 200), default=DEFAULT_MAX_KEYS,
              show_default=True, help="Most timelines to draw (labelled keys come first).")
@click.option("--speed", type=float, default=100.0, show_default=True,
              help="Replay: event time per wall-clock second; 0 = as fast as possible.")
@click.option("--timeout", type=float, default=900.0, show_default=True,
              help="Replay: seconds to wait for the worker to finish after sending.")
@click.option("--offline-check/--no-offline-check", default=True, show_default=True,
              help="Replay: also run the detector offline and compare alert ids.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the full result (JSON) here.")
@click.option("--check", is_flag=True,
              help="Deprecated, no effect: a missed target always exits 1.")
def eval_alerts(streams: tuple[Path, ...], labels: Path | None, target_set: str,
                reviewed: Path | None, offline: bool, png_dir: Path | None, png_max: int,
                speed: float, timeout: float, offline_check: bool, out: Path | None,
                check: bool) -> None:
    """Replay STREAMS (JSONL, in event-time order) through Kafka, a worker and Redis (or
    score them offline) and judge the alerts: labelled spikes or episodes caught or
    missed, with their delays; false or unconfirmed alerts per scope kind; every alert
    with its evidence. Exits 1 when a measured target is missed."""
    if png_dir is not None:
        try:
            require_matplotlib()  # before a long run, not after it
        except ChartsUnavailable as exc:
            fail(str(exc))  # an extra to install: the message names it
    label_set, reviews = _read_inputs(labels, reviewed)
    base = settings_with()
    lines = read_stream(streams)
    times = [ln.event_time.timestamp() for ln in lines if ln.event_time is not None]
    if not times:
        fail("the stream is empty (no line with a readable event time)",
             "pass JSONL files of NewsItem / ChatMessage records", ExitCode.DATA)
    span = (min(times), max(times))
    kind: TargetSet
    if target_set == "auto":  # the labels' kind; an unlabelled stream is taken as real news
        kind = label_set.kind if label_set is not None else "real"
    else:
        kind = "synthetic" if target_set == "synthetic" else "real"
    spans = label_set.spans if label_set is not None else []
    console.print(_intro(kind, label_set, reviews, offline))
    need_buckets = png_dir is not None or (kind == "synthetic" and bool(spans))
    if offline:
        run = run_offline(base, lines)
    else:
        label_kinds = {s.scope for s in spans}
        run = run_pipeline(base, lines, speed=speed, timeout=timeout,
                           offline_check=offline_check,
                           bucket_scopes=({*base.alerts.scopes, *label_kinds}
                                          if need_buckets else None))
    kinds = scope_kinds(run.settings, run.rows, label_set)
    synthetic: EvalReport | None = None
    real: RealReport | None = None
    if kind == "synthetic":
        synthetic = score(spans, run.rows, lines, run.settings, run.buckets)
        verdict = synthetic_verdict(synthetic, kinds)
        for table in synthetic_tables(synthetic, kinds):
            console.print(table)
        false_ids = {f.alert_id for f in synthetic.false_alerts}
        false_rows = [r for r in run.rows if r.alert_id in false_ids]
        if false_rows:
            console.print(alerts_table([(r, r.severity, "[red]false[/]") for r in false_rows],
                                       long=span[1] - span[0] > 86_400,
                                       title="False alerts, with their evidence"))
    else:
        real = judge_real(spans, run.rows, span=span, scope_kinds=kinds, reviews=reviews)
        verdict = real_verdict(real)
        for table in real_tables(real):
            console.print(table)
    if run.offline_match is not None:
        console.print("pipeline == offline detector: " + (
            "[green]yes[/]" if run.offline_match else
            f"[red]no[/] (offline only {len(run.offline_only)}: "
            f"{', '.join(run.offline_only[:4]) or '-'}; pipeline only "
            f"{len(run.pipeline_only)}: {', '.join(run.pipeline_only[:4]) or '-'})"))
    console.print(verdict.panel())
    if png_dir is not None:
        _draw(png_dir, run, spans, span, png_max)
    if out is not None:
        _write_result(out, run, kind, labels, verdict, synthetic, real, span, speed)
    if check:
        console.print("[dim]--check is deprecated: a missed target always exits 1[/]")
    if verdict.failed:
        raise click.exceptions.Exit(1)


def _intro(kind: TargetSet, labels: LabelSet | None, reviews: dict[str, Review],
           offline: bool) -> str:
    where = ("offline (in-process scoring and detection)" if offline
             else "through Kafka, a worker and Redis")
    if labels is None:
        what = "no labels: recall will not be measured"
    else:
        noun = "spikes" if labels.kind == "synthetic" else "episodes"
        what = f"{len(labels.spans)} labelled {noun} from {labels.path}"
        if labels.empty:
            what += " (none: recall will not be measured)"
    extra = f"; {len(reviews)} reviewed alert(s)" if reviews else ""
    return f"evaluating {where}; {kind} targets; {what}{extra}"


def _draw(png_dir: Path, run: Run, spans: Sequence[SpanLabel], span: tuple[float, float],
          cap: int) -> None:
    keys, left_out = keys_of_interest(spans, run.rows, cap)
    if not keys:
        console.print("[yellow]no timeline drawn: nothing labelled and no alert[/]")
        return
    p = run.settings.alerts.detector(run.settings.aggregate.bucket_seconds)
    series = series_for(run.buckets or {}, keys, span=span, bucket_s=p.bucket_s,
                        baseline_s=p.baseline_s, rows=run.rows, labels=spans)
    try:
        paths = write_timelines(series, png_dir, subtitle=f"{run.mode} run; bins of "
                                f"{series[0].bin_s} s" if series else "")
    except ChartsUnavailable as exc:
        fail(str(exc))
    console.print(f"wrote {len(paths)} timeline(s) to {png_dir}: "
                  + ", ".join(p.name for p in paths))
    if left_out:
        console.print(f"[dim]{len(left_out)} more key(s) alerted; raise --png-max to draw "
                      "them[/]")


def _write_result(out: Path, run: Run, kind: TargetSet, labels: Path | None, verdict: Verdict,
                  synthetic: EvalReport | None, real: RealReport | None,
                  span: tuple[float, float], speed: float) -> None:
    result = EvalResult(
        mode=run.mode, targets=kind, labels=None if labels is None else str(labels),
        verdict=[TargetResult(name=t.name, status=t.status, detail=t.detail)
                 for t in verdict.targets],
        failed=verdict.failed, synthetic=synthetic, real=real, alerts=run.rows,
        messages=run.messages, event_hours=(span[1] - span[0]) / 3600,
        speed=None if run.mode == "offline" else (speed or None),
        replay_seconds=run.replay_seconds, offline_match=run.offline_match,
        offline_only=run.offline_only, pipeline_only=run.pipeline_only,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(result.model_dump_json(indent=2))
    console.print(f"wrote {out}")


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
