"""``streamer run-demo``: the main job. Local stack, a worker, the demo stream, a summary."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson
from hdrh.histogram import HdrHistogram
from rich.panel import Panel

from streamer.aggregate import TrendStore
from streamer.aggregate.summary import (
    TopicAccount,
    TrendRow,
    Window,
    accounts,
    trend_rows,
    window,
)
from streamer.alert.follow import read_alerts
from streamer.cli.alerts_cmd import render_alert
from streamer.cli.common import console, fail, run, settings_with
from streamer.cli.produce_cmd import demo_config, demo_options, demo_outgoing
from streamer.cli.summary_cmd import accounts_table, latency_table, print_trends
from streamer.latency.histograms import END_TO_END, difference
from streamer.latency.report import read_histograms, stage_rows
from streamer.produce.demo import DemoGenerator, SpikeLabel
from streamer.produce.sender import Outgoing, SendReport, send_all
from streamer.schemas.alerts import AlertRecord
from streamer.settings import Settings


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(orjson.loads(r.read()).get("ready"))
    except Exception:
        return False


def _start_worker(settings: Settings, worker_id: str, log: Path) -> subprocess.Popen[bytes]:
    topics, redis = settings.topics, settings.redis
    env = {**os.environ, "KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
           "REDIS_URL": redis.url, "STREAMER_WORKER_ID": worker_id,
           "STREAMER_WEB_PORT": str(settings.web.port), "STREAMER_SCORER": settings.scoring.scorer,
           # The stack's shape (--kafka-brokers, --redis-cluster) and what follows from it.
           "STREAMER_KAFKA_BROKERS": str(settings.stack.kafka_brokers),
           "STREAMER_TOPIC_REPLICATION_FACTOR": str(topics.replication_factor),
           "STREAMER_REDIS_CLUSTER": str(redis.cluster).lower(),
           "STREAMER_REDIS_WAIT_REPLICAS": str(redis.wait_replicas)}
    if topics.min_insync_replicas is not None:
        env["STREAMER_TOPIC_MIN_INSYNC_REPLICAS"] = str(topics.min_insync_replicas)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "streamer.cli.main", "worker", "--loglevel", "warning"],
            env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )


def _start_full_build(settings: Settings) -> None:
    """The accurate bundle, built in the background at the lowest CPU priority when none
    is complete: the worker switches to it, without a restart, once it is. Never under
    CI, nor for a worker pinned to a bundle or on the baseline."""
    from streamer.bundle.locate import FULL_BUNDLE, is_complete_bundle
    from streamer.cli.background_build import NICE, log_path, start

    ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    full = settings.paths.bundles / FULL_BUNDLE
    if (ci or not settings.stack.demo_full_build or settings.scoring.bundle_dir is not None
            or settings.scoring.scorer == "baseline" or is_complete_bundle(full)):
        return
    started = start(full, ["models", "build", "--profile", "full", "--out", str(full),
                           "--threads", str(settings.scoring.bundle_build_threads), "--quiet"])
    if started is None:
        console.print(f"the full bundle is being built in the background (log: {log_path(full)})")
        return
    console.print(f"building the full (accurate) bundle in the background: pid {started.pid}, "
                  f"nice {NICE}, log {started.log}; hours on 2 CPUs, resumed if interrupted. "
                  "Workers switch to it without a restart once it is complete "
                  "(--no-full-build or STREAMER_DEMO_FULL_BUILD=false: skip)")


async def _totals(settings: Settings) -> list[TopicAccount]:
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        return await accounts(store)
    finally:
        await store.close()


async def _snapshot(settings: Settings, start_s: float, end_s: float) -> Window:
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        return await window(store, start_s, end_s)
    finally:
        await store.close()


async def _produce_and_watch(
    settings: Settings, outgoing: list[Outgoing], rate: float | None, timeout: float,
    before: list[TopicAccount], progress: bool = True,
) -> tuple[SendReport, list[TopicAccount], float | None, float]:
    """Send while watching Redis, so the first aggregated event is timed as it happens;
    also returns the seconds from the first send until every record was processed."""
    t0 = time.monotonic()
    first_seen: float | None = None
    sending = asyncio.create_task(send_all(settings, outgoing, rate=rate, total=len(outgoing),
                                           progress=progress))
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        while True:
            done = _delta(await accounts(store), before)
            n = sum(a.consumed for a in done)
            if first_seen is None and n > 0:
                first_seen = time.monotonic() - t0
            if sending.done() and n >= sending.result().sent:
                return sending.result(), done, first_seen, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                console.print(f"[red]only {n} of {len(outgoing)} processed after {timeout:.0f}s[/]")
                return await sending, done, first_seen, time.monotonic() - t0
            await asyncio.sleep(0.05)
    finally:
        await store.close()


async def _pushed_histograms(settings: Settings, worker_id: str,
                             scored: int) -> tuple[dict[str, HdrHistogram], bool]:
    """This worker's histograms once its pushes to Redis hold every event it scored
    (``scored``), waiting up to two push intervals; (histograms, complete)."""
    store = TrendStore.connect(settings.redis, settings.aggregate)
    deadline = time.monotonic() + 2 * settings.worker.latency_push_interval_s + 2.0
    try:
        while True:
            merged = await read_histograms(store.redis, settings.redis.key_prefix, worker_id)
            e2e = merged.get(END_TO_END[0])
            if e2e is not None and e2e.get_total_count() >= scored:
                return merged, True
            if time.monotonic() > deadline:
                return merged, False
            await asyncio.sleep(0.25)
    finally:
        await store.close()


def _delta(after: list[TopicAccount], before: list[TopicAccount]) -> list[TopicAccount]:
    prev = {a.topic: a for a in before}
    out = []
    for a in after:
        b = prev.get(a.topic)
        out.append(a.model_copy(update={
            "consumed": a.consumed - (b.consumed if b else 0),
            "scored": a.scored - (b.scored if b else 0),
            "dead_lettered": a.dead_lettered - (b.dead_lettered if b else 0),
        }))
    return out


@click.command("run-demo")
@demo_options
@click.option("--rate", type=float, default=None,
              help="Messages per second offered to Kafka after the warm-up. Default: "
              "STREAMER_DEMO_RATE_SHARE (0.5) of the rate the worker sustained in the "
              "warm-up, so that the measured run has no backlog.")
@click.option("--keep-worker", is_flag=True, help="Leave the worker running afterwards.")
@click.option("--timeout", type=float, default=600.0, show_default=True,
              help="Seconds to wait for the worker to catch up.")
@click.option("--no-full-build", is_flag=True,
              help="Do not start building the full bundle in the background "
              "(STREAMER_DEMO_FULL_BUILD=false does the same).")
@click.option("--kafka-brokers", type=click.IntRange(1, 9), default=None,
              help="Run on a local Kafka cluster of this many nodes (3: replication factor "
              "3, min.insync.replicas 2) [default: $STREAMER_KAFKA_BROKERS or 1].")
@click.option("--redis-cluster", is_flag=True,
              help="Run on a local Redis Cluster (3 masters + 3 replicas, WAIT 1) "
              "[default: $STREAMER_REDIS_CLUSTER].")
def run_demo(rate: float | None, keep_worker: bool, timeout: float, no_full_build: bool,
             kafka_brokers: int | None, redis_cluster: bool, **options: object) -> None:
    """Start Kafka + Redis + a worker, stream the demo market data, and summarise."""
    # The flags as STREAMER_KAFKA_BROKERS / STREAMER_REDIS_CLUSTER: the bootstrap list,
    # replication, REDIS_URL and WAIT follow from them (settings.derived_defaults).
    settings = settings_with(kafka_brokers=kafka_brokers, redis_cluster=redis_cluster or None)
    t_setup = time.monotonic()
    if "KAFKA_BOOTSTRAP" not in os.environ and "REDIS_URL" not in os.environ:
        from streamer.devstack import StackError, stack_up

        console.rule("[bold]1. local stack")
        try:
            status = stack_up(settings)
        except StackError as exc:
            fail(str(exc))
        redis_on = (f"a Redis Cluster of {len(status.redis_cluster.nodes)} nodes from "
                    f"{status.redis_cluster.url}" if settings.redis.cluster and status.redis_cluster
                    else f"Redis on {status.redis.url}")
        console.print(f"Kafka {status.kafka.version} on {status.kafka.bootstrap}, {redis_on}")
    console.rule("[bold]2. model")
    from streamer.score.select import prepare_scorer
    from streamer.training.quick import build_if_missing

    scorer_name = prepare_scorer(settings, build_if_missing)
    console.print(f"scorer: [bold]{scorer_name}[/]")
    if not no_full_build:
        _start_full_build(settings)

    console.rule("[bold]3. worker")
    worker_id = f"demo-{uuid.uuid4().hex[:6]}"
    log = settings.paths.data_dir / "logs" / f"{worker_id}.log"
    t_worker = time.monotonic()
    proc = _start_worker(settings, worker_id, log)
    while not _ready(settings.web.port):
        if proc.poll() is not None:
            fail(f"the worker exited with code {proc.returncode}", f"see its log: {log}")
        ready_timeout = settings.stack.demo_worker_ready_timeout_s
        if time.monotonic() - t_worker > ready_timeout:
            proc.terminate()
            fail(f"the worker did not become ready in {ready_timeout:.0f} s",
                 f"see its log: {log} (STREAMER_DEMO_WORKER_READY_TIMEOUT_S waits longer)")
        time.sleep(0.5)
    worker_start_s = time.monotonic() - t_worker
    console.print(f"worker {worker_id} ready in {worker_start_s:.1f}s "
                  f"(health on http://127.0.0.1:{settings.web.port}/readyz, log {log})")
    try:
        _stream_and_report(settings, worker_id, rate, timeout, options,
                           setup_s=t_worker - t_setup, worker_start_s=worker_start_s)
    finally:
        if not keep_worker and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    console.print("\nThe stack keeps running: [bold]streamer stack down[/] stops it; "
                  "[bold]streamer summary[/] shows the totals again.")


def _stream_and_report(settings: Settings, worker_id: str, rate: float | None,
                       timeout: float, options: dict[str, object], *, setup_s: float,
                       worker_start_s: float) -> None:
    cfg = demo_config(settings, **options)
    if cfg.start is None:
        cfg = cfg.model_copy(update={"start": datetime.now(UTC) - timedelta(minutes=cfg.minutes)})
    messages, labels = DemoGenerator(cfg).generate()
    assert cfg.start is not None
    start_s, end_s = cfg.start.timestamp(), cfg.start.timestamp() + cfg.minutes * 60
    outgoing = demo_outgoing(settings, messages)
    n_warm = min(settings.stack.demo_warmup_messages, len(outgoing) // 4)
    warm, measured = outgoing[:n_warm], outgoing[n_warm:]
    before = asyncio.run(_totals(settings))
    # A run started within minutes of another shares its event-time window: report
    # this run's part as the difference of the window's aggregates.
    window_before = asyncio.run(_snapshot(settings, start_s, end_s))

    console.rule("[bold]4. warm-up")
    sustained: float | None = None
    baseline: dict[str, HdrHistogram] = {}
    if warm:
        console.print(f"the first {len(warm)} messages of the stream, sent at once: they warm "
                      "the worker (model, batches, connections) and show the rate it sustains; "
                      "their latency is left out of this run's figures")
        w_report, w_done, w_first, w_all = run(_produce_and_watch(
            settings, warm, None, timeout, before, progress=False))
        sustained = w_report.sent / w_all if w_all > 0 else None
        console.print(f"warm-up: {w_report.sent} messages processed {w_all:.1f} s after the "
                      f"first send (first one after {(w_first or 0) * 1000:.0f} ms): the worker "
                      f"sustained about [bold]{sustained or 0:.0f} msg/s[/] with a backlog")
        baseline, complete = asyncio.run(_pushed_histograms(
            settings, worker_id, sum(a.scored for a in w_done)))
        if not complete:
            console.print("[yellow]the worker's latency push after the warm-up did not come "
                          "in time: some warm-up events may count in the figures below[/]")
    if rate is None:
        rate = max(1.0, round(settings.stack.demo_rate_share * sustained)) if sustained else 300.0
        why = (f"{settings.stack.demo_rate_share:.0%} of what the worker sustained "
               "(STREAMER_DEMO_RATE_SHARE; --rate to choose)") if sustained else "no warm-up"
    else:
        why = "--rate"
    console.rule("[bold]5. demo stream")
    console.print(f"{len(measured)} messages offered at [bold]{rate:.0f} msg/s[/] ({why})")
    if sustained and rate > sustained:
        console.print(f"[yellow]{rate:.0f} msg/s is more than the {sustained:.0f} msg/s the "
                      "worker sustained: expect a backlog, in the 'queue' stage below[/]")
    before_measured = asyncio.run(_totals(settings))
    report, _, _, elapsed = run(  # a broker stalled: one line
        _produce_and_watch(settings, measured, rate, timeout, before_measured)
    )
    done = _delta(asyncio.run(_totals(settings)), before)
    console.rule("[bold]6. summary")
    console.print(Panel.fit(
        f"sent {len(warm) + report.sent} messages: {len(warm)} to warm up, then {report.sent} "
        f"{report.by_topic} at {rate:.0f}/s offered; all processed {elapsed:.1f}s after their "
        f"first send\nsetup {setup_s:.1f}s, worker start-up {worker_start_s:.1f}s\n"
        "injected spike: " + ", ".join(f"{lb.scope} {lb.key} ({lb.messages} negative news "
                                        f"from {lb.start:%H:%M:%S} UTC, event time)"
                                        for lb in labels),
        title="this run",
    ))
    console.print(accounts_table(done))
    rows = asyncio.run(_window(settings, start_s, end_s, window_before))
    print_trends(rows, 10)
    after, complete = asyncio.run(_pushed_histograms(
        settings, worker_id, sum(a.scored for a in done)))
    lat = stage_rows(difference(after, baseline) if baseline else after)
    if not complete:
        console.print("[yellow]the worker's last latency push did not come in time: the "
                      "table may miss the last events[/]")
    view = (f"this run's {report.sent} messages after the warm-up" if warm
            else f"this run's {report.sent} messages")
    console.print(latency_table(lat, None, view))
    console.rule("[bold]7. alerts")
    if not settings.alerts.enabled:
        console.print("[yellow]alerts are disabled (STREAMER_ALERTS_ENABLED=false)[/]")
        return
    _report_alerts(asyncio.run(_run_alerts(settings, start_s, end_s, labels)), labels)


def _matches(rec: AlertRecord, label: SpikeLabel) -> bool:
    # Decided at or after the spike's first message: a run started minutes after another
    # shares part of its event-time window, and the earlier run's alert on the same key
    # is not this spike's (it showed as a negative detection delay).
    return (rec.kind == "fired" and rec.scope == label.scope and rec.key == label.key
            and rec.detected_event_time >= label.start)


async def _run_alerts(settings: Settings, start_s: float, end_s: float,
                      labels: list[SpikeLabel]) -> list[AlertRecord]:
    """This run's alerts (event time inside its window), waiting a while for the spike's.

    The detector runs behind the event-time watermark, so the alert for a spike near the
    end of the stream may still be on its way when the last message is aggregated.
    """
    deadline = time.monotonic() + settings.stack.demo_alert_wait_s
    while True:
        found = [
            rec async for rec in read_alerts(settings, follow=False, from_beginning=True)
            if start_s <= rec.detected_event_time.timestamp() <= end_s + 60
        ]
        if all(any(_matches(r, lb) for r in found) for lb in labels):
            return found
        if time.monotonic() > deadline:
            return found
        await asyncio.sleep(1.0)


def _report_alerts(found: list[AlertRecord], labels: list[SpikeLabel]) -> None:
    for rec in found:
        # The one delay this run reports is below, from the spike's true start; the
        # record's own estimate (detection_delay_ms, from the detector's guess of the
        # start) is left off here (`streamer alerts` shows it).
        console.print(render_alert(rec.model_copy(update={"detection_delay_ms": None})))
    for lb in labels:
        hit = next((r for r in found if _matches(r, lb)), None)
        if hit is None:
            console.print(f"[red]injected spike on {lb.scope} {lb.key}: no alert[/]")
            continue
        # The demo replays past event time faster than real time, so wall-clock delays
        # here are an artefact of the replay speed; in event time the delay is what a
        # live feed (event time = wall clock) would see.
        delay = (hit.detected_event_time - lb.start).total_seconds()
        console.print(f"injected spike on {lb.scope} [bold]{lb.key}[/] from "
                      f"{lb.start:%H:%M:%S} UTC: [bold red]{hit.severity}[/] alert, "
                      f"[bold]detection delay {delay:.0f} s[/]")
    if labels:
        console.print("[dim]detection delay: from the spike's first message to the moment "
                      "the detector decided, both in event time (the messages' own "
                      "timestamps). The demo replays its minutes faster than real time; on a "
                      "live feed this is how long after a spike starts its alert comes (plus "
                      "the end-to-end latency above).[/]")
    console.print(f"[dim]{len(found)} alert record(s) in this run's window (times: event "
                  "time, UTC); follow them live with `streamer alerts --follow`[/]")


async def _window(settings: Settings, start_s: float, end_s: float,
                  before: Window) -> list[TrendRow]:
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        return trend_rows(await window(store, start_s, end_s), minus=before)
    finally:
        await store.close()
