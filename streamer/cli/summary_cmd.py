"""``streamer summary``: accounting, trends and latency, read from Redis."""

from __future__ import annotations

from pathlib import Path

import click
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


def latency_table(rows: list[StageLatency], alert: StageLatency | None = None) -> Table:
    t = Table(title="Latency per stage (ms; stamps on one wall clock anchored per process, "
              "monotonic within it; 'kafka' spans producer and worker clocks)")
    for col in ("stage", "events", "mean", "p50", "p90", "p99", "p99.9", "max",
                "share of mean", "of p50", "of p99"):
        t.add_column(col, justify="left" if col == "stage" else "right")

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.0%}"

    def add(r: StageLatency) -> None:
        t.add_row(r.stage, str(r.count), *(f"{v:.2f}" for v in (
            r.mean_ms, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms)),
            pct(r.share_mean), pct(r.share_p50), pct(r.share_p99))

    for r in rows:
        add(r)
    notes = []
    total = stages_sum(rows)
    if total is not None:
        notes.append(f"the stages' means add up to {total:.1%} of the end-to-end mean; "
                     "percentiles of a sum are not sums, so the p50/p99 shares need not")
    if alert is not None:
        t.add_section()
        add(alert)  # no shares: not a part of any event's end to end
        notes.append("alert: per fired alert, the spike's first event (record timestamp) "
                     "to the alert appended to the alerts topic (Kafka ack), wall clock; "
                     "it includes the event-time window the detector must see close")
    t.caption = "\n".join(notes) or None
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
def summary(top: int) -> None:
    """Print messages in/scored/dead-lettered, trends per topic, ticker, market and stream,
    and latency."""
    accs, rows, lat, alert = run(_collect())
    console.print(accounts_table(accs))
    print_trends(rows, top)
    if lat:
        console.print(latency_table(lat, alert))


async def _latency(worker: str) -> tuple[list[StageLatency], StageLatency | None]:
    settings = settings_with()
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        merged = await read_histograms(store.redis, settings.redis.key_prefix,
                                       None if worker == "*" else worker)
        return stage_rows(merged), alert_row(merged)
    finally:
        await store.close()


@click.command("latency")
@click.option("--worker", default="*", show_default=True,
              help="One worker's histograms ('*': every worker's, merged).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per stage.")
@click.option("--png", "png_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write latency_percentiles.png and latency_shares.png into DIR.")
def latency(worker: str, as_json: bool, png_dir: Path | None) -> None:
    """Latency per stage (p50/p90/p99/p99.9/max, mean) and each stage's share of end to
    end, and the alert latency (spike's first event -> alert appended), from the HDR
    histograms every worker writes to Redis; --png DIR draws the stages."""
    if worker != "*" and not is_key_part(worker):
        raise click.BadParameter("a worker id has only letters, digits and '._-' "
                                 "(see `streamer summary`)", param_hint="--worker")
    rows, alert = run(_latency(worker))
    if not rows:
        msg = ("no latency recorded yet: is a worker running against this Redis "
               f"(prefix {settings_with().redis.key_prefix!r})?")
        if png_dir is not None:
            raise click.ClickException(msg + " (no charts written)")
        if not as_json:
            console.print(msg)
        return
    if as_json:
        for r in rows if alert is None else [*rows, alert]:
            click.echo(r.model_dump_json())
    else:
        console.print(latency_table(rows, alert))
    if png_dir is not None:
        from streamer.latency.charts import write_charts

        paths = write_charts(rows, png_dir, title="" if worker == "*" else f"worker {worker}")
        if not as_json:
            for path in paths:
                console.print(f"wrote {path}")
