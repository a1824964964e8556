"""``eval-alerts --png DIR``: one timeline per scope key of interest, for a person to read.

Per key, two panels over the stream's event time: the messages per bin (and how many of
them were negative), and the negative share per bin against a trailing baseline share,
with the alerts marked (fired, escalated, resolved; the alerts' own baseline share as
dots) and the labelled episodes shaded. The bin width follows the span: 10 s buckets for
a synthetic hour, an hour for 40 days of news.

matplotlib is the optional ``charts`` extra and is imported here only, with the off-screen
Agg backend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamer.detect.core import Buckets, ScopeKey
from streamer.evaluation.labels import SpanLabel
from streamer.evaluation.rows import AlertRow, duration

CHARTS_INSTALL = "pip install -e '.[charts]'"
# Bin widths a timeline may use (s); the first that keeps it under TARGET_BINS wins.
_WIDTHS = (10, 20, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200,
           86_400)
TARGET_BINS = 1_000
SHARE_MESSAGES = 10
MIN_SHARE_MESSAGES = 3
# Streams longer than this get zoom panels: a day around each alert or episode (at most
# MAX_ZOOMS), where 40 days at a glance would squeeze an episode into a few pixels.
ZOOM_FROM_S = 3 * 86_400
ZOOM_SPAN_S = 86_400
ZOOM_BIN_S = 900
MAX_ZOOMS = 3
DEFAULT_MAX_KEYS = 12
_KIND_STYLE = {"fired": ("#c2665a", "-"), "escalated": ("#e39b3a", "-"),
               "resolved": ("#6cb38a", ":")}


class ChartsUnavailable(RuntimeError):
    """matplotlib is not installed; the message says how to install the extra."""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ChartsUnavailable(
            f"--png draws with matplotlib, an optional extra: {CHARTS_INSTALL}") from exc


def choose_bin(span_s: float, bucket_s: int) -> int:
    """The narrowest width (a whole number of buckets) giving at most TARGET_BINS bins."""
    for w in _WIDTHS:
        if w % bucket_s == 0 and span_s / w <= TARGET_BINS:
            return w
    return max(_WIDTHS[-1], bucket_s)


def keys_of_interest(labels: Iterable[SpanLabel], rows: Iterable[AlertRow],
                     cap: int = DEFAULT_MAX_KEYS) -> tuple[list[ScopeKey], list[ScopeKey]]:
    """Every labelled key, then keys that alerted (most alerts first), at most ``cap``:
    (drawn, left out)."""
    order: list[ScopeKey] = []
    for lb in labels:
        if (lb.scope, lb.key) not in order:
            order.append((lb.scope, lb.key))
    fired: dict[ScopeKey, int] = {}
    for r in rows:
        if r.kind == "fired":
            fired[(r.scope, r.key)] = fired.get((r.scope, r.key), 0) + 1
    order += [k for k in sorted(fired, key=lambda k: (-fired[k], k)) if k not in order]
    return order[:cap], order[cap:]


@dataclass
class KeySeries:
    """What one timeline shows."""

    scope: str
    key: str
    bin_s: int
    starts: list[float]
    messages: list[int]
    negatives: list[int]
    share: list[float | None]  # negative share over the share window ending with each bin
    share_s: int
    baseline: list[float | None]  # trailing negative share before each bin
    baseline_s: float
    alerts: list[AlertRow] = field(default_factory=list)
    episodes: list[SpanLabel] = field(default_factory=list)
    zooms: list[KeySeries] = field(default_factory=list)


def key_series(buckets: Buckets, key: ScopeKey, *, span: tuple[float, float], bin_s: int,
               baseline_s: float, alerts: Sequence[AlertRow] = (),
               labels: Sequence[SpanLabel] = ()) -> KeySeries:
    """Bin ``key``'s bucket counts; the baseline of a bin is the share over the
    ``baseline_s`` before it (a plain trailing window: what a reader would call usual)."""
    t0 = span[0] - span[0] % bin_s
    n_bins = max(1, math.ceil((span[1] - t0 + 1) / bin_s))
    n = [0] * n_bins
    neg = [0] * n_bins
    for b, per_key in buckets.items():
        c = per_key.get(key)
        i = int((b - t0) // bin_s)
        if c is not None and 0 <= i < n_bins:
            n[i] += c[0]
            neg[i] += c[1]
    back = max(1, round(baseline_s / bin_s))
    # The share is read over enough bins to hold about SHARE_MESSAGES messages on average
    # (a share of one or two stories is 0 or 100% and says nothing), at most half the
    # baseline's span.
    mean = sum(n) / n_bins
    k = max(1, min(math.ceil(SHARE_MESSAGES / mean) if mean else 1, back // 2))
    scope, name = key
    return KeySeries(
        scope=scope, key=name, bin_s=bin_s, starts=[t0 + i * bin_s for i in range(n_bins)],
        messages=n, negatives=neg, share=_trailing(n, neg, k, 0), share_s=k * bin_s,
        baseline=_trailing(n, neg, back, 1), baseline_s=back * bin_s,
        alerts=[a for a in alerts if (a.scope, a.key) == key],
        episodes=[lb for lb in labels if (lb.scope, lb.key.casefold()) == (scope,
                                                                         name.casefold())],
    )


def _trailing(n: Sequence[int], neg: Sequence[int], k: int, lag: int) -> list[float | None]:
    """Per bin i: the negative share over bins [i - lag - k + 1, i - lag] (None: fewer
    than MIN_SHARE_MESSAGES messages there, too few for a share to mean anything)."""
    out: list[float | None] = []
    sn = sneg = 0
    for i in range(len(n)):
        j = i - lag
        if j >= 0:
            sn += n[j]
            sneg += neg[j]
        if j - k >= 0:
            sn -= n[j - k]
            sneg -= neg[j - k]
        out.append(sneg / sn if sn >= MIN_SHARE_MESSAGES else None)
    return out


def file_name(scope: str, key: str) -> str:
    return f"timeline-{scope}-{re.sub(r'[^A-Za-z0-9._-]+', '_', key).strip('_') or 'key'}.png"


def write_timelines(series: Sequence[KeySeries], out_dir: Path,
                    subtitle: str = "") -> list[Path]:
    """One PNG per key; returns the paths. Raises :class:`ChartsUnavailable` without
    matplotlib."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.dates import date2num

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for s in series:
        rows = 3 if s.zooms else 2
        fig = plt.figure(figsize=(12, 8.6 if s.zooms else 6.2), dpi=110)
        grid = fig.add_gridspec(rows, max(1, len(s.zooms)),
                                height_ratios=[1, 1.4, 1.1][:rows],
                                hspace=0.35 if s.zooms else 0.12)
        top = fig.add_subplot(grid[0, :])
        bottom = fig.add_subplot(grid[1, :], sharex=top)
        _volume(top, s)
        top.tick_params(labelbottom=False)
        _share(bottom, s)
        _dates(bottom)
        bottom.set_xlabel("event time (UTC)")
        for ax in (top, bottom):
            _marks(ax, s)
        for lb in s.episodes:
            top.text(date2num(lb.start), 1.0, f" {lb.title}",
                     transform=top.get_xaxis_transform(),
                     va="top", fontsize=8, color="#7a5c00", clip_on=True)
        peak = _peaks(s.alerts)
        for a in s.alerts:
            if a.kind == "fired":
                bottom.annotate(peak.get(a.episode_id, a.severity), (a.detected, 1.06),
                                xytext=(3, 0), textcoords="offset points", fontsize=7.5,
                                va="center", color=_KIND_STYLE["fired"][0])
        for i, z in enumerate(s.zooms):
            ax = fig.add_subplot(grid[2, i])
            _volume(ax, z, small=True)
            _marks(ax, z)
            _dates(ax, small=True)
            ax.set_title(f"from {_day(z.starts[0])}, {duration(z.bin_s)} bins", fontsize=8.5,
                         loc="left")
        # One legend for everything; proxy artists for alert kinds and episodes.
        h_top, n_top = top.get_legend_handles_labels()
        h_bottom, n_bottom = bottom.get_legend_handles_labels()
        handles, names = h_top + h_bottom, n_top + n_bottom
        for kind, (color, ls) in _KIND_STYLE.items():
            if any(a.kind == kind for a in s.alerts):
                handles.append(plt.Line2D([], [], color=color, ls=ls, lw=1.3))
                names.append(f"alert {kind}")
        if s.episodes:
            handles.append(plt.Rectangle((0, 0), 1, 1, color="#f2d98d", alpha=0.5))
            names.append("labelled episode")
        fig.legend(handles, names, fontsize=7.5, frameon=False, ncols=4, loc="upper left",
                   bbox_to_anchor=(0.06, 0.05 if s.zooms else 0.03))
        n_alerts = sum(1 for a in s.alerts if a.kind == "fired")
        title = (f"{s.scope} {s.key}: {sum(s.messages):,} messages, "
                 f"{n_alerts} alert{'s' * (n_alerts != 1)}, "
                 f"{len(s.episodes)} labelled episode{'s' * (len(s.episodes) != 1)}")
        fig.suptitle(title, fontsize=11, x=0.06, ha="left")
        if subtitle:
            fig.text(0.06, 0.935 if s.zooms else 0.925, subtitle, fontsize=8, color="#6b7385",
                     ha="left")
        path = out_dir / file_name(s.scope, s.key)
        fig.savefig(path, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def _day(t: float) -> str:
    return f"{datetime.fromtimestamp(t, UTC):%a %d %b %Y %H:%M}"


def _volume(ax: Any, s: KeySeries, small: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator

    times = [datetime.fromtimestamp(t, UTC) for t in s.starts]
    width = s.bin_s / 86_400.0
    ax.bar(times, s.messages, width=width, align="edge", color="#8d99b3", label="messages")
    ax.bar(times, s.negatives, width=width, align="edge", color="#c2665a",
           label="of them negative")
    ax.set_ylabel("messages" if small else f"messages / {duration(s.bin_s)}",
                  fontsize=8 if small else None)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if small:
        ax.tick_params(labelsize=7)


def _share(ax: Any, s: KeySeries) -> None:
    times = [datetime.fromtimestamp(t, UTC) for t in s.starts]
    share = [math.nan if v is None else v for v in s.share]
    ax.step(times, share, where="post", color="#c2665a", lw=1.4,
            label=f"negative share over {duration(s.share_s)} (>= {MIN_SHARE_MESSAGES} msgs)")
    base = [math.nan if b is None else b for b in s.baseline]
    ax.step(times, base, where="post", ls="--", color="#33415c", lw=1.2,
            label=f"baseline: share over the {duration(s.baseline_s)} before")
    fired = [a for a in s.alerts if a.kind != "resolved"]
    if fired:  # what the detector compared with, beside the plain trailing share
        ax.plot([a.detected for a in fired], [a.baseline_share for a in fired], "D",
                color="#33415c", ms=5, label="baseline share the alert used")
    ax.set_ylim(-0.03, 1.12)
    ax.set_ylabel("negative share")


def _marks(ax: Any, s: KeySeries) -> None:
    for lb in s.episodes:
        ax.axvspan(lb.start, lb.end, color="#f2d98d", alpha=0.5, lw=0, zorder=0)
    lo, hi = s.starts[0], s.starts[-1] + s.bin_s
    for a in s.alerts:
        if lo <= a.detected_s <= hi:
            color, ls = _KIND_STYLE.get(a.kind, ("#6b7385", "-"))
            ax.axvline(a.detected, color=color, ls=ls, lw=1.3, alpha=0.9)
    ax.set_xlim(datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC))
    ax.grid(which="major", color="#e3e6ec")
    ax.spines[["top", "right"]].set_visible(False)


def _dates(ax: Any, small: bool = False) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3 if small else 5, maxticks=6 if small else 12)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    if small:
        ax.tick_params(labelsize=7)


def _peaks(alerts: Iterable[AlertRow]) -> dict[str, str]:
    """Episode id -> the highest severity its records reached."""
    order = {"warning": 0, "major": 1, "critical": 2}
    out: dict[str, str] = {}
    for a in alerts:
        if a.kind != "resolved" and order.get(a.severity, -1) > order.get(
                out.get(a.episode_id, ""), -1):
            out[a.episode_id] = a.severity
    return out


def series_for(buckets: Buckets, keys: Iterable[ScopeKey], *, span: tuple[float, float],
               bucket_s: int, baseline_s: float, rows: Sequence[AlertRow],
               labels: Sequence[SpanLabel]) -> list[KeySeries]:
    """The series of each key, with one bin width for all (chosen from the span)."""
    bin_s = choose_bin(span[1] - span[0], bucket_s)
    # The trailing baseline spans at least the detector's baseline and a day of long bins.
    base_s = max(baseline_s, 24 * bin_s)
    out = []
    for k in keys:
        s = key_series(buckets, k, span=span, bin_s=bin_s, baseline_s=base_s, alerts=rows,
                       labels=labels)
        if span[1] - span[0] > ZOOM_FROM_S:
            zoom_bin = max(bucket_s, ZOOM_BIN_S - ZOOM_BIN_S % bucket_s)
            s.zooms = [key_series(buckets, k, span=_zoom_span(t, span), bin_s=zoom_bin,
                                  baseline_s=base_s, alerts=rows, labels=labels)
                       for t in _focus(s)]
        out.append(s)
    return out


def _zoom_span(t: float, span: tuple[float, float]) -> tuple[float, float]:
    """A day from a quarter day before ``t``, moved (not cut) to lie inside the stream."""
    start = min(max(t - ZOOM_SPAN_S / 4, span[0]), max(span[0], span[1] - ZOOM_SPAN_S))
    return start, min(start + ZOOM_SPAN_S, span[1])


def _focus(s: KeySeries) -> list[float]:
    """Start times worth a closer look: labelled episodes, then fired alerts (one per day)."""
    times = [lb.start.timestamp() for lb in s.episodes]
    times += [a.detected_s - 3_600 for a in s.alerts if a.kind == "fired"]
    out: list[float] = []
    for t in times:
        if all(abs(t - u) > ZOOM_SPAN_S / 2 for u in out):
            out.append(t)
    return out[:MAX_ZOOMS]
