"""PNG plots of ``streamer bench pipeline`` (matplotlib, off-screen Agg backend).

Reads the result models and the verdicts' medians; the report calls it, never the reverse."""

from __future__ import annotations

from pathlib import Path

from streamer.bench.pipeline.results import PipelineBench, Run
from streamer.bench.pipeline.verdicts import latency_run, median_runs
from streamer.latency.charts import require_matplotlib

LATENCY_PNG = "latency_vs_load.png"
RAMP_PNG = "throughput_ramp.png"
_COLORS = ("#c2665a", "#4a78c2", "#e39b3a", "#6cb38a", "#a77cc7", "#7aa6d8", "#8c8c8c")


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def write_plots(b: PipelineBench, out: Path) -> list[Path]:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    # 1. end-to-end p50 / p99 against the offered load, every measured step of each variant
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=120)
    for i, v in enumerate(b.variants):
        ramp = [r for r in b.runs if r.variant == v.name and r.phase != "latency"]
        runs = sorted((r for r in ramp + median_runs(b.runs, v.name)
                       if r.offered_rate and r.e2e is not None),
                      key=lambda r: r.offered_rate or 0.0)
        if not runs:
            continue
        xs = [r.offered_rate or 0.0 for r in runs]
        ax.plot(xs, [r.e2e.p99_ms for r in runs if r.e2e], "-o", color=_color(i), ms=4,
                label=f"{v.name} p99")
        ax.plot(xs, [r.e2e.p50_ms for r in runs if r.e2e], "--", color=_color(i), lw=1,
                alpha=0.7, label=f"{v.name} p50")
        bad = [r for r in runs if not r.sustainable]
        if bad:
            ax.plot([r.offered_rate or 0.0 for r in bad], [r.e2e.p99_ms for r in bad if r.e2e], "x",
                    color="black", ms=8, mew=1.5)
    for rate, name in ((b.low_rate, "low"), (b.high_rate, "high")):
        if rate:
            ax.axvline(rate, color="#6b7385", ls=":", lw=1)
            ax.text(rate, 1.0, f" {name}", transform=ax.get_xaxis_transform(), va="top",
                    fontsize=8, color="#6b7385")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, msg/s (log)")
    ax.set_ylabel("end-to-end latency, ms (log)")
    ax.set_title("End-to-end latency vs offered load (x: not sustainable)")
    ax.grid(which="major", color="#e3e6ec")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, ncols=2, frameon=False)
    fig.tight_layout()
    path = out / LATENCY_PNG
    fig.savefig(path)
    plt.close(fig)
    written.append(path)

    # 2. completed against offered over the ramp; the diagonal is "keeps up"
    fig, ax = plt.subplots(figsize=(8, 6), dpi=120)
    top = 1.0
    for i, v in enumerate(b.variants):
        steps: list[Run] = sorted((r for r in b.runs if r.variant == v.name and r.phase == "ramp"
                                   and r.offered_rate), key=lambda r: r.offered_rate or 0.0)
        if not steps:
            continue
        xs = [r.offered_rate or 0.0 for r in steps]
        ys = [r.completed_rate for r in steps]
        top = max(top, *xs, *ys)
        ax.plot(xs, ys, "-o", color=_color(i), ms=4, label=v.name)
        for r in steps:
            if not r.sustainable:
                ax.plot([r.offered_rate or 0.0], [r.completed_rate], "x", color="black", ms=8,
                        mew=1.5)
        if v.capacity is not None and v.capacity_completed is not None:
            ax.annotate(f"{v.capacity_completed:,.0f}", (v.capacity, v.capacity_completed),
                        textcoords="offset points", xytext=(4, -12), fontsize=8,
                        color=_color(i))
    ax.plot([0.5, top * 1.3], [0.5, top * 1.3], ":", color="#6b7385", lw=1,
            label="completed = offered")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load, msg/s (log)")
    ax.set_ylabel("completed (Redis updated), msg/s (log)")
    ax.set_title("Throughput ramp (x: not sustainable; label: capacity)")
    ax.grid(which="major", color="#e3e6ec")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    path = out / RAMP_PNG
    fig.savefig(path)
    plt.close(fig)
    written.append(path)

    # 3. per-stage charts of ours at the high load (the existing `streamer latency --png`)
    from streamer.latency.charts import write_charts

    for v in b.variants:
        high = latency_run(b.runs, v.name, "high")  # the median round
        if high is not None and high.kind == "ours" and high.stages:
            written += write_charts(high.stages, out / f"stages-{high.variant}-high",
                                    title=f"{high.variant}, {high.offered_rate:,.0f} msg/s")
    return written
