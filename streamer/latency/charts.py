"""``streamer latency --png DIR``: the per-stage table as two PNG charts.

matplotlib is imported here only, with the off-screen Agg backend (no display needed). It
is an optional extra (``charts``): without it, drawing raises :class:`ChartsUnavailable`,
which says what to install.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from streamer.latency.histograms import END_TO_END
from streamer.latency.report import StageLatency

PERCENTILES_PNG = "latency_percentiles.png"
SHARES_PNG = "latency_shares.png"
_QUANTILES = (("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms"))
_COLORS = ("#4a78c2", "#7aa6d8", "#e39b3a", "#c2665a", "#a77cc7", "#6cb38a")


CHARTS_INSTALL = "pip install 'streamer[charts]'"


class ChartsUnavailable(click.ClickException):
    """matplotlib is not installed. A ClickException, so a command that draws charts
    stops with this one line (what to install) rather than a traceback."""


def require_matplotlib() -> None:
    """Raise :class:`ChartsUnavailable`, naming the ``charts`` extra, when matplotlib
    cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ChartsUnavailable(
            "charts (`streamer latency --png`, `streamer bench`'s plots) need matplotlib, "
            f"an optional extra: {CHARTS_INSTALL}"
        ) from exc


def _label(stage: str) -> str:
    return stage.replace("_", " ")


def _ms(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _tick(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g} s"
    return f"{v:g} ms"


def _with_unit(v: float) -> str:
    text = _ms(v)
    return text if text.endswith(" s") else f"{text} ms"


def write_charts(rows: list[StageLatency], out_dir: Path, *, title: str = "") -> list[Path]:
    """Write ``latency_percentiles.png`` (grouped p50/p90/p99/p99.9 bars per stage, log ms)
    and ``latency_shares.png`` (each stage's share of the end-to-end p50 and p99, stacked).

    Raises :class:`ChartsUnavailable` without matplotlib (the ``charts`` extra)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = f" ({title})" if title else ""
    written = []

    # 1. percentiles per stage, grouped, log scale
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=120)
    width = 0.8 / len(_QUANTILES)
    for j, (name, attr) in enumerate(_QUANTILES):
        xs = [i + (j - (len(_QUANTILES) - 1) / 2) * width for i in range(len(rows))]
        values = [max(getattr(r, attr), 1e-3) for r in rows]
        bars = ax.bar(xs, values, width * 0.95, label=name, color=_COLORS[j])
        ax.bar_label(bars, labels=[_ms(v) for v in values], fontsize=7, padding=2,
                     rotation=90)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _tick(v)))
    ax.set_xticks(range(len(rows)), [f"{_label(r.stage)}\n{r.count:,} events" for r in rows])
    top = max((r.p999_ms for r in rows), default=1.0)
    low = min((max(r.p50_ms, 1e-3) for r in rows), default=1.0)
    # bars rise from a power of ten below the smallest; room above for the value labels
    ax.set_ylim(10 ** math.floor(math.log10(low * 0.9)), top * 8)
    ax.set_ylabel("milliseconds (log scale)")
    ax.set_title("Latency per stage: p50 / p90 / p99 / p99.9" + suffix)
    ax.grid(axis="y", which="major", color="#e3e6ec")
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(ncols=4, frameon=False, loc="upper left")
    fig.tight_layout()
    path = out_dir / PERCENTILES_PNG
    fig.savefig(path)
    plt.close(fig)
    written.append(path)

    # 2. shares of end to end, stacked per percentile
    stages = [r for r in rows if r.stage != END_TO_END[0]]
    e2e = next((r for r in rows if r.stage == END_TO_END[0]), None)
    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=120)
    cols = [("p50", "share_p50", "p50_ms"), ("p99", "share_p99", "p99_ms")]
    for y, (_, share_attr, _) in enumerate(cols):
        left = 0.0
        for i, r in enumerate(stages):
            share = getattr(r, share_attr) or 0.0
            ax.barh(y, share, left=left, color=_COLORS[i % len(_COLORS)],
                    label=_label(r.stage) if y == 0 else None, edgecolor="white")
            if share >= 0.06:
                ax.text(left + share / 2, y, f"{share:.0%}", ha="center", va="center",
                        color="white", fontsize=9, fontweight="bold")
            left += share
        if left:
            ax.text(left + 0.01, y, f"sum {left:.0%}", va="center", fontsize=9,
                    color="#6b7385")
    ax.set_yticks(range(len(cols)), [
        f"of end-to-end {name}\n({_with_unit(getattr(e2e, ms_attr))})" if e2e else name
        for name, _, ms_attr in cols])
    ax.invert_yaxis()
    ax.axvline(1.0, color="#1d2330", linewidth=1, linestyle=":")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0%}"))
    ax.set_xlim(0, max(1.15, ax.get_xlim()[1]))
    ax.set_title("Each stage's share of the end-to-end percentile" + suffix)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(ncols=len(stages) or 1, frameon=False, loc="upper center",
              bbox_to_anchor=(0.5, -0.18), fontsize=9)
    fig.text(0.99, 0.01, "percentiles of a sum are not sums: the shares need not add up to 100%",
             ha="right", va="bottom", fontsize=7.5, color="#6b7385")
    fig.tight_layout()
    path = out_dir / SHARES_PNG
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written
