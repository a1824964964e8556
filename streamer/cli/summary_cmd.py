"""``streamer summary``: accounting, trends and latency, read from Redis."""

from __future__ import annotations

from pathlib import Path

import click
import orjson
from rich.markup import escape
from rich.table import Table

from streamer.aggregate import TrendStore
from streamer.aggregate.summary import TopicAccount, TrendRow, accounts, trends
from streamer.cli.common import console, run, settings_with
from streamer.keys import is_key_part
from streamer.latency.report import (
    StageLatency,
    alert_row,
    read_histograms,
    stage_rows,
    stages_sum,
    window_label,
)


def accounts_table(rows: list[TopicAccount]) -> Table:
    t = Table(title="Messages (exact, per input topic)")
    for col in ("topic", "partitions", "consumed", "scored", "dead-lettered", "balanced"):
        t.add_column(col, justify="right" if col not in ("topic", "balanced") else "left")
    for a in rows:
        t.add_row(a.topic, str(a.partitions), str(a.consumed), str(a.scored),
                  str(a.dead_lettered), "[green]yes[/]" if a.balanced else "[red]NO[/]")
    return t


def _bar(share: float, width: int = 20) -> str:
    n = round(share * width)
    return "[red]" + "█" * n + "[/]" + "·" * (width - n)


def trends_table(rows: list[TrendRow], scope: str, top: int) -> Table:
    t = Table(title=f"Sentiment per {scope}" + (f" (top {top} by volume)" if top else ""))
    for col in (scope, "messages", "negative", "neutral", "positive", "negative share", ""):
        t.add_column(col, justify="left" if col in (scope, "") else "right")
    picked = [r for r in rows if r.scope == scope]
    for r in picked[:top] if top else picked:
        c = r.counts
        # Names from the model are not markup (rich would read a '[' as a style).
        t.add_row(escape(r.key), str(r.messages), str(c.get("negative", 0)),
                  str(c.get("neutral", 0)), str(c.get("positive", 0)),
                  f"{r.negative_share:.0%}", _bar(r.negative_share))
    return t


def print_trends(rows: list[TrendRow], top: int) -> None:
    """Every topic and the ``top`` tickers; the markets (``top``) and the streams (news,
    chat) when the window has any."""
    console.print(trends_table(rows, "topic", 0))
    console.print(trends_table(rows, "ticker", top))
    for scope, n in (("market", top), ("stream", 0)):
        if any(r.scope == scope for r in rows):
            console.print(trends_table(rows, scope, n))


def latency_table(rows: list[StageLatency], alert: StageLatency | None = None,
                  view: str = window_label(None)) -> Table:
    t = Table(title=f"Latency per stage, {view} (ms)")
    for col in ("stage", "what it is", "events", "mean", "p50", "p90", "p99", "p99.9", "max",
                "share of mean"):
        t.add_column(col, justify="left" if col in ("stage", "what it is") else "right")

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.0%}"

    def add(r: StageLatency) -> None:
        t.add_row(r.stage, r.meaning, str(r.count), *(f"{v:.2f}" for v in (
            r.mean_ms, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms)),
            pct(r.share_mean))

    for r in rows:
        if r.stage == "end_to_end":
            t.add_section()
        add(r)
    notes = []
    total = stages_sum(rows)
    if total is not None:
        notes.append(f"the stages chain: their means add up to {total:.1%} of the end-to-end "
                     "mean (percentiles of a sum are not sums)")
    queue = next((r for r in rows if r.stage == "queue"), None)
    if queue is not None and queue.share_mean is not None and queue.share_mean >= 0.25:
        notes.append(f"queue is {queue.share_mean:.0%} of the mean: records waited for a busy "
                     "worker (more load than it keeps up with), not for Kafka")
    notes.append("stamps: one wall clock per process, monotonic within it; queue and kafka "
                 "start at the producer's record timestamp (its clock)")
    if alert is not None:
        t.add_section()
        add(alert)  # no shares: not a part of any event's end to end
        notes.append("alert: per fired alert, the spike's first event (record timestamp) "
                     "to the alert appended to the alerts topic (Kafka ack), wall clock; "
                     "it includes the event-time window the detector must see close")
    t.caption = "\n".join(notes)
    return t


async def _collect() -> tuple[list[TopicAccount], list[TrendRow], list[StageLatency],
                            StageLatency | None]:
    settings = settings_with()
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        merged = await read_histograms(store.redis, settings.redis.key_prefix)
        return (await accounts(store), await trends(store), stage_rows(merged),
                alert_row(merged))
    finally:
        await store.close()


@click.command()
@click.option("--top", type=int, default=10, show_default=True,
              help="Tickers (and markets) to show.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object (accounts, every trend row, latency) instead of tables: "
              "for scripts, e.g. comparing two deployments' counts.")
def summary(top: int, as_json: bool) -> None:
    """Print messages in/scored/dead-lettered, trends per topic, ticker, market and stream,
    and latency."""
    accs, rows, lat, alert = run(_collect())
    if as_json:
        click.echo(orjson.dumps({
            "accounts": [{**a.model_dump(), "balanced": a.balanced} for a in accs],
            "trends": [r.model_dump() for r in rows],
            "latency": [r.model_dump() for r in lat],
            "alert_latency": None if alert is None else alert.model_dump(),
        }, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(accounts_table(accs))
    print_trends(rows, top)
    if lat:
        console.print(latency_table(lat, alert))


async def _latency(worker: str, window_s: float | None
                   ) -> tuple[list[StageLatency], StageLatency | None]:
    settings = settings_with()
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        merged = await read_histograms(store.redis, settings.redis.key_prefix,
                                       None if worker == "*" else worker, window_s)
        return stage_rows(merged), alert_row(merged)
    finally:
        await store.close()


def _window(value: str | None) -> float | None:
    """``--window``: '5m', '90s', '1h' or seconds; 'start': since each worker started."""
    if value is None or value == "start":
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    text = value.strip().lower()
    mult = units.get(text[-1:], 0)
    try:
        seconds = float(text[:-1]) * mult if mult else float(text)
    except ValueError:
        seconds = 0.0
    if seconds <= 0:
        raise click.BadParameter(f"{value!r}: a duration such as 5m, 90s or 1h, or 'start'",
                                 param_hint="--window")
    return seconds


@click.command("latency")
@click.option("--worker", default="*", show_default=True,
              help="One worker's histograms ('*': every worker's, merged).")
@click.option("--window", "window", default=None,
              help="Only this view: the last DURATION of wall clock (5m, 90s, 1h), or "
              "'start' for the totals since each worker started. Default: both, the recent "
              "one over STREAMER_LATENCY_WINDOW_S.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per stage and view.")
@click.option("--png", "png_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write latency_percentiles.png and latency_shares.png into DIR "
              "(of the --window view; default since start).")
def latency(worker: str, window: str | None, as_json: bool, png_dir: Path | None) -> None:
    """Latency per stage (p50/p90/p99/p99.9/max, mean) and each stage's share of end to
    end, and the alert latency (spike's first event -> alert appended), from the HDR
    histograms every worker writes to Redis: over the recent window and since each worker
    started; --png DIR draws the stages."""
    if worker != "*" and not is_key_part(worker):
        raise click.BadParameter("a worker id has only letters, digits and '._-' "
                                 "(see `streamer summary`)", param_hint="--worker")
    settings = settings_with()
    if window is None:
        views: list[float | None] = [float(settings.worker.latency_window_s), None]
    else:
        views = [_window(window)]
    shown: list[tuple[float | None, list[StageLatency], StageLatency | None]] = []
    for view in views:
        rows, alert = run(_latency(worker, view))
        shown.append((view, rows, alert))
    if not any(rows for _, rows, _ in shown):
        msg = ("no latency recorded yet" + ("" if window is None else
                                            f" ({window_label(views[0])})") +
               ": is a worker running against this Redis "
               f"(prefix {settings.redis.key_prefix!r})?")
        if png_dir is not None:
            raise click.ClickException(msg + " (no charts written)")
        if not as_json:
            console.print(msg)
        return
    for view, rows, alert in shown:
        label = window_label(view)
        if as_json:
            for r in rows if alert is None else [*rows, alert]:
                click.echo(orjson.dumps({"view": label, "window_s": view,
                                         **r.model_dump()}).decode())
        elif rows:
            console.print(latency_table(rows, alert, label))
        else:
            console.print(f"no latency recorded {label}")
    if png_dir is not None:
        from streamer.latency.charts import write_charts

        view, rows, _ = shown[-1]
        if not rows:
            raise click.ClickException(f"no latency recorded {window_label(view)} "
                                       "(no charts written)")
        title = ("" if worker == "*" else f"worker {worker}, ") + window_label(view)
        paths = write_charts(rows, png_dir, title=title)
        if not as_json:
            for path in paths:
                console.print(f"wrote {path}")
