"""``streamer alerts`` (read the alerts topic) and ``streamer trends`` (sparkline table)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from streamer.aggregate import TrendStore
from streamer.alert.engine import span as span_text
from streamer.alert.follow import read_alerts
from streamer.alert.store import AlertStore
from streamer.cli.common import console, run, settings_with
from streamer.detect.core import ALL, SEVERITIES, Detector, LongStats, WindowStats
from streamer.keys import ALERT_SCOPES, Scope
from streamer.schemas.alerts import SEVERITY_ORDER, AlertRecord
from streamer.settings import Settings

_KIND_STYLE = {"fired": "bold red", "escalated": "bold magenta", "resolved": "bold green"}
_SEVERITY_STYLE = {"warning": "yellow", "major": "red", "critical": "bold white on red"}
_SPARKS = "▁▂▃▄▅▆▇█"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
# Scopes with many keys, of which `streamer trends` shows the busiest (--top).
_TOPPED = ("ticker", "market")


# --- streamer alerts -----------------------------------------------------------------------
def _keep(rec: AlertRecord, min_severity: str, scope: str | None, key: str | None) -> bool:
    return (SEVERITY_ORDER[rec.severity] >= SEVERITY_ORDER[min_severity]
            and (scope is None or rec.scope == scope)
            and (key is None or rec.key.upper() == key.upper()))


def render_alert(rec: AlertRecord, evidence: int = 3) -> Text:
    """One alert, readable: what, where, how strong, when; then its evidence."""
    t = Text()
    t.append(f"{rec.detected_event_time:%Y-%m-%d %H:%M:%S}  ", style="dim")
    t.append(f"{rec.kind.upper():<9}", style=_KIND_STYLE[rec.kind])
    t.append(f" {rec.severity:<8}", style=_SEVERITY_STYLE[rec.severity])
    t.append(f" {rec.scope} ", style="dim")
    t.append(f"{rec.key:<24}", style="bold")
    t.append(f" negative {rec.negative_share:.0%} vs {rec.baseline_share:.0%} baseline"
             f" (z {rec.z:.1f}, {rec.negatives}/{rec.messages} msgs in "
             f"{(rec.window_end - rec.window_start).total_seconds():.0f}s)")
    if rec.first_event_time is not None and rec.kind == "fired":
        t.append(f"  spike from {rec.first_event_time:%H:%M:%S}", style="dim")
        if rec.detection_delay_ms is not None:
            t.append(f", detected +{rec.detection_delay_ms / 1000:.1f}s", style="dim")
    t.append(f"  [{rec.alert_id}]", style="dim")
    if rec.why:
        t.append(f"\n    why: {rec.why}", style="dim")
    for ev in rec.evidence[:evidence]:
        t.append("\n    ↳ ", style="dim")
        t.append(f"{ev.negative_prob:.2f} ", style="red")
        t.append(f"{ev.source}: ", style="cyan")
        t.append(ev.snippet[:140])
    return t


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Keep printing new alerts as they come.")
@click.option("--min-severity", type=click.Choice(SEVERITIES), default="warning",
              show_default=True, help="Hide alerts below this severity.")
@click.option("--scope", type=click.Choice(ALERT_SCOPES), help="Only this scope.")
@click.option("--key", help="Only this topic, ticker, market or stream, as the model or the "
              "input names it (e.g. XOM, or \"Energy | Oil\", \"S&P 500\" in quotes).")
@click.option("--new-only", is_flag=True, help="Skip alerts already on the topic.")
@click.option("--max", "max_alerts", type=int, help="Stop after this many alerts.")
@click.option("--json", "as_json", is_flag=True, help="One JSON record per line.")
def alerts(follow: bool, min_severity: str, scope: str | None, key: str | None,
           new_only: bool, max_alerts: int | None, as_json: bool) -> None:
    """Print alerts from the alerts topic (each alert id once; --follow to keep going)."""
    settings = settings_with()

    async def main() -> int:
        n = 0
        async for rec in read_alerts(settings, follow=follow, from_beginning=not new_only):
            if not _keep(rec, min_severity, scope, key):
                continue
            if as_json:
                click.echo(rec.model_dump_json())
            else:
                console.print(render_alert(rec))
            n += 1
            if max_alerts is not None and n >= max_alerts:
                break
        return n

    try:
        n = run(main())  # Kafka down or refusing us: one line and its exit code
    except KeyboardInterrupt:
        return
    if not as_json and not follow:
        console.print(f"[dim]{n} alert(s)[/]")


# --- streamer trends -----------------------------------------------------------------------
def parse_duration(text: str) -> int:
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise click.BadParameter(f"{text!r}: use seconds or a number with s, m, h or d")
    return int(float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])


def sparkline(values: Sequence[float | None], top: float | None = None) -> str:
    """Blocks scaled to ``top`` (default: the largest value); None draws a gap."""
    present = [v for v in values if v is not None]
    hi = top if top is not None else max(present, default=0.0)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif hi <= 0:
            out.append(_SPARKS[0])
        else:
            out.append(_SPARKS[min(len(_SPARKS) - 1, int(v / hi * (len(_SPARKS) - 1) + 0.5))])
    return "".join(out)


async def _trend_rows(settings: Settings, scope: Scope | None, key: str | None,
                      window_s: int, top: int, slots: int) -> tuple[list[list[str]], str]:
    store = TrendStore.connect(settings.redis, settings.aggregate)
    try:
        span = await store.time_range()
        if span is None:
            return [], "no trend data in Redis yet"
        w = settings.aggregate.bucket_seconds
        end = span[1]  # the newest bucket (event time): a replay of old data shows too
        start = end + w - window_s
        scopes: list[Scope] = [scope] if scope else list(ALERT_SCOPES)
        totals = await store.window_all(start, end, scopes)
        found = [(cast(Scope, sc), k) for (sc, k) in totals
                 if sc in scopes and (key is None or k.upper() == key.upper())]
        found.sort(key=lambda sk: (ALERT_SCOPES.index(sk[0]), -totals[sk].total, sk[1]))
        # Every topic and stream; the busiest tickers and markets (there may be many).
        keys = found if key is not None else [
            sk for sc in scopes
            for sk in [k for k in found if k[0] == sc][:top if sc in _TOPPED else None]]
        alerts = AlertStore(store.redis, store.keys.prefix,
                            claim_ttl_s=settings.alerts.claim_ttl_s)
        snap = await alerts.snapshot()
        params = settings.alerts.detector(settings.aggregate.bucket_seconds)
        det = Detector(params, snap.states, snap.cursor, snap.origin)
        rows = []
        per_slot = max(1, (window_s // w + slots - 1) // slots)
        for sc, k in keys:
            series = await store.series(sc, k, start, end, ["negative", "neutral", "positive"])
            shares: list[float | None] = []
            volumes: list[float | None] = []
            for i in range(0, len(series), per_slot):
                chunk = [wc for _, wc in series[i:i + per_slot]]
                n = sum(wc.total for wc in chunk)
                neg = sum(wc.counts.get("negative", 0) for wc in chunk)
                shares.append(neg / n if n else None)
                volumes.append(float(n))
            wc = totals[(sc, k)]
            state = snap.states.get((sc, k))
            stats = det.stats_for((sc, k)) if state else None
            longs = det.long_stats_for((sc, k)) if state else []
            rows.append([
                sc, k, str(wc.total), f"{wc.share('negative'):.0%}",
                _baseline(stats), _z(stats), _long(det, sc, longs),
                _status(state.active if state else False, state.severity if state else None),
                sparkline(shares, 1.0), sparkline(volumes),
            ])
        newest = datetime.fromtimestamp(end + w, UTC)
        caption = (f"last {window_s // 60} min of event time, up to {newest:%Y-%m-%d %H:%M:%S} "
                   f"UTC; one sparkline character = {per_slot * w}s")
        if snap.cursor is None and ALL not in snap.states:
            caption += "; detector not started yet"
        return rows, caption
    finally:
        await store.close()


def _baseline(stats: WindowStats | None) -> str:
    return f"{stats.baseline_share:.0%}" if stats else "-"


def _z(stats: WindowStats | None) -> str:
    return f"{max(stats.z, stats.peak_z):.1f}" if stats else "-"


def _long(det: Detector, scope: str, longs: list[LongStats]) -> str:
    """The long window nearest to firing: its negatives, z and the z it needs."""
    if not longs:
        return "-"
    t = max(longs, key=lambda t: t.z)
    return (f"{span_text(t.window_s)}: {t.negatives}/{t.messages}, z {t.z:.1f} "
            f"(needs {det.long_z_min(scope, longs):.1f})")


def _status(active: bool, severity: str | None) -> str:
    if not active:
        return "[green]ok[/]"
    return f"[{_SEVERITY_STYLE.get(severity or 'warning', 'red')}]ALERT {severity}[/]"


@click.command()
@click.option("--topic", help="Only this topic, as the model names it "
              "(e.g. \"Energy | Oil\", in quotes).")
@click.option("--ticker", help="Only this ticker (e.g. XOM).")
@click.option("--market", help="Only this market, by its canonical name "
              "(e.g. \"Dow Jones\", \"S&P 500\", in quotes).")
@click.option("--stream", type=click.Choice(["news", "chat"]),
              help="Only this input kind's stream (every news item, or every chat line).")
@click.option("--window", "window", default="30m", show_default=True,
              help="How far back: seconds, or e.g. 15m, 2h.")
@click.option("--top", type=int, default=10, show_default=True,
              help="Tickers (and markets) to show.")
@click.option("--width", type=int, default=30, show_default=True,
              help="Sparkline characters.")
def trends(topic: str | None, ticker: str | None, market: str | None, stream: str | None,
           window: str, top: int, width: int) -> None:
    """Current trends per topic, ticker, market and stream: negative share, baseline, z,
    sparklines."""
    given = {sc: k for sc, k in (("topic", topic), ("ticker", ticker), ("market", market),
                                 ("stream", stream)) if k}
    if len(given) > 1:
        raise click.UsageError("give one of --topic, --ticker, --market, --stream")
    settings = settings_with()
    window_s = max(settings.aggregate.bucket_seconds, parse_duration(window))
    scope, key = next(iter(given.items()), (None, None))
    # Redis down or refusing us: one line and its exit code (run()).
    rows, caption = run(_trend_rows(settings, cast(Scope | None, scope), key, window_s,
                                    top, max(1, width)))
    t = Table(title="Trends (event time)", caption=caption)
    for col in ("scope", "key", "messages", "negative", "baseline", "z", "long window", "state",
                "negative share", "volume"):
        t.add_column(col, justify="right" if col in ("messages", "negative", "baseline", "z")
                     else "left")
    for row in rows:
        t.add_row(*[escape(c) if i < 2 else c for i, c in enumerate(row)])
    console.print(t)
