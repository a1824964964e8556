"""The Markdown report of ``streamer bench pipeline``, its docs/BENCHMARKS.md section, and
writing results.json, report.md and the plots into the output folder."""

from __future__ import annotations

import re
from pathlib import Path

from streamer.bench.pipeline.plots import write_plots
from streamer.bench.pipeline.results import (
    BARE_RATIO_TARGET,
    MATCH_TOLERANCE,
    PEER_THROUGHPUT_TARGET,
    THROUGHPUT_TARGET,
    PipelineBench,
    Plan,
    Run,
)
from streamer.bench.pipeline.verdicts import ratio_of
from streamer.latency.histograms import STAGES

DOC_START = "<!-- streamer-bench-pipeline:start -->"
DOC_END = "<!-- streamer-bench-pipeline:end -->"


def _n(v: float | None, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _met(v: bool | None) -> str:
    return "-" if v is None else ("**met**" if v else "**NOT met**")


def target_lines(b: PipelineBench) -> list[str]:
    t = b.targets
    if t is None:
        return []
    lines = [
        "| target | measured | goal | result |",
        "|---|---|---|---|",
        f"| end-to-end throughput, ours (adaptive) / naive | {_n(t.ours_capacity)} / "
        f"{_n(t.naive_capacity)} msg/s = **{_n(t.throughput_ratio, '.1f')}x** | >= "
        f"{THROUGHPUT_TARGET:g}x | {_met(t.throughput_met)} |",
        f"| p99 end to end at {_n(t.low_rate, '.1f')} msg/s (50% of naive capacity), ours / "
        f"naive | {_ms(t.ours_p99_ms)} / {_ms(t.naive_p99_ms)} ms = "
        f"**{_n(t.p99_ratio, '.3f')}** | <= 1/3 | {_met(t.p99_met)} |",
    ]
    lines += peer_target_lines(b)
    lines += bare_target_lines(b)
    for c in t.adaptive_vs_fixed:
        median = ""
        if c.rounds > 1:
            median = f", medians of {c.rounds} rounds"
            if c.rounds_lower is not None:
                median += f"; adaptive lower in {c.rounds_lower} of them"
        lines.append(
            f"| adaptive vs best fixed, p99 at {c.load} load ({_n(c.rate, '.1f')} msg/s) | "
            f"{_ms(c.adaptive_p99_ms)} vs {_ms(c.best_fixed_p99_ms)} ms ({c.best_fixed or '-'})"
            f" = {_n(c.ratio, '.2f')}{median} | matches (<= {1 + MATCH_TOLERANCE:.2f}) or "
            f"beats | **{c.verdict}** |")
    if (h := b.kafka_hop) is not None:
        lines.append(f"| the Kafka hop alone at {_n(t.low_rate, '.1f')} msg/s (no pipeline), "
                     f"p50 / p99 | {_ms(h.p50_ms)} / {_ms(h.p99_ms)} ms | (information: the "
                     f"floor under both pipelines) | - |")
    if t.adaptive_capacity_vs_best_fixed is not None:
        lines.append(f"| adaptive capacity / best fixed capacity | "
                     f"{t.adaptive_capacity_vs_best_fixed:.2f} | (information) | - |")
    return lines


def peer_target_lines(b: PipelineBench) -> list[str]:
    """Ours (adaptive) against the Quix Streams peer: capacity, and p99 at the same loads."""
    t = b.targets
    if t is None or t.peer is None:
        return []
    same = "same or lower p99 at the low and the high load"
    return [
        f"| end-to-end throughput, ours (adaptive) / peer ({t.peer}) | {_n(t.ours_capacity)} / "
        f"{_n(t.peer_capacity)} msg/s = **{_n(t.peer_throughput_ratio, '.1f')}x** | >= "
        f"{PEER_THROUGHPUT_TARGET:g}x | {_met(t.peer_throughput_met)} |",
        f"| p99 end to end, ours / peer, at {_n(t.low_rate, '.1f')} msg/s (low) and "
        f"{_n(b.high_rate, '.1f')} msg/s (high) | {_ms(t.ours_p99_ms)} / {_ms(t.peer_p99_ms)} ms "
        f"= **{_n(t.peer_p99_ratio, '.2f')}**; {_ms(t.ours_high_p99_ms)} / "
        f"{_ms(t.peer_high_p99_ms)} ms | {same} | {_met(t.peer_p99_met)} |",
    ]


def bare_target_lines(b: PipelineBench) -> list[str]:
    """Ours (adaptive) end to end against the bare model at its batch size."""
    t = b.targets
    row = next((r for r in b.bare if t is not None and r.variant == t.bare_variant), None)
    if t is None or row is None:
        return []
    return [f"| end-to-end throughput / the bare model's (tokenize + infer alone, batch "
            f"{row.size}), ours ({row.variant}) | {_n(row.e2e_msgs_per_s)} / "
            f"{_n(row.bare_msgs_per_s)} msg/s = **{_n(t.bare_ratio, '.2f')}** | >= "
            f"{BARE_RATIO_TARGET:g} | {_met(t.bare_met)} |"]


def capacity_lines(b: PipelineBench) -> list[str]:
    naive = next((v for v in b.variants if v.kind == "naive"), None)
    lines = ["| variant | what | saturated (probe) msg/s | max sustainable offered msg/s | "
             "completed msg/s there | x naive |", "|---|---|---:|---:|---:|---:|"]
    for v in b.variants:
        x = ratio_of(v.capacity_completed, naive.capacity_completed if naive else None)
        at_least = "" if v.limit_found or v.capacity is None else ">= "
        lines.append(f"| {v.name} | {v.label} | {_n(v.probe_rate)} | "
                     f"{at_least}{_n(v.capacity, ',.1f')} | "
                     f"{_n(v.capacity_completed, ',.1f')} | {_n(x, '.1f')} |")
    scorer = b.bare_model.scorer if b.bare_model else ""
    for r in b.bare:
        x = ratio_of(r.bare_msgs_per_s, naive.capacity_completed if naive else None)
        lines.append(f"| bare model, batch {r.size} | tokenize + infer alone ({scorer}), "
                     f"{r.variant}'s batches, no Kafka, no Redis | - | - | "
                     f"{_n(r.bare_msgs_per_s, ',.1f')} | {_n(x, '.1f')} |")
    return lines


def bare_lines(b: PipelineBench) -> list[str]:
    """Each of ours' variants against the bare model at its batch size."""
    m = b.bare_model
    if m is None or not b.bare:
        return []
    rounds = len({c.round for c in m.cells})
    lines = [f"The bare model: the worker's scorer ({m.scorer}, {m.model}) on its scoring "
             f"pool ({m.threads} threads, ONNX Runtime intra-op {m.ort_intra_op_threads}), "
             f"{m.threads} concurrent callers, batches of one input topic each cycling through "
             f"the load generator's first {m.texts:,} messages (decoded before the clock "
             f"starts); {b.plan.bare_s:g} s per size"
             f"{f', median of {rounds} rounds' if rounds > 1 else ''}, after the workers "
             "stopped.", "",
             "| variant | batch | from | mean batch at capacity | bare msg/s | tokens/msg | "
             "tokenize share | end-to-end msg/s | end to end / bare |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in b.bare:
        share = "-" if r.tokenize_share is None else f"{r.tokenize_share:.0%}"
        lines.append(f"| {r.variant} | {r.size} | {r.size_from} | "
                     f"{_n(r.observed_batch_mean, '.1f')} | {_n(r.bare_msgs_per_s, ',.1f')} | "
                     f"{_n(r.tokens_per_msg, '.1f')} | {share} | "
                     f"{_n(r.e2e_msgs_per_s, ',.1f')} | {_n(r.ratio, '.2f')} |")
    return lines


def profile_lines(b: PipelineBench) -> list[str]:
    """Where the profiled worker's time went: its stages' shares, its CPU by category."""
    p = b.profile
    if p is None:
        return []
    e = p.e2e
    lines = [f"{p.variant} at {p.offered_rate:,.1f} msg/s offered ({b.plan.profile_fraction:.0%} "
             f"of its capacity; completed {p.completed_rate:,.1f} msg/s) for {p.seconds:g} s, "
             f"{p.tool} attached ({p.rate_hz} Hz, non-blocking, idle threads not sampled, "
             f"{p.waiting:,} samples caught waiting left out; a thread ready to run but "
             f"waiting for a core counts as running, so on a busy machine these are shares "
             f"of runnable time; `{p.raw}`): end to end p50 "
             f"{_ms(e.p50_ms if e else None)} ms, p99 "
             f"{_ms(e.p99_ms if e else None)} ms.", "",
             "| stage (the worker's stamps) | mean ms | p50 ms | p99 ms | mean share of end to "
             "end |", "|---|---:|---:|---:|---:|"]
    for st in p.stages:
        share = "-" if st.share_mean is None else f"{st.share_mean:.0%}"
        lines.append(f"| {st.stage.replace('_', ' ')} | {_ms(st.mean_ms)} | {_ms(st.p50_ms)} | "
                     f"{_ms(st.p99_ms)} | {share} |")
    lines += ["", f"| CPU: where the samples were ({p.samples:,} active thread samples, "
              f"{p.messages:,} messages) | samples | share | CPU us per message |",
              "|---|---:|---:|---:|"]
    lines += [f"| {c.name} | {c.samples:,} | {c.share:.1%} | {_n(p.us_per_msg(c.samples))} |"
              for c in p.categories]
    lines += ["", "| thread (MainThread: the event loop) | samples | share | CPU us per message |",
              "|---|---:|---:|---:|"]
    lines += [f"| {t.name} | {t.samples:,} | {t.share:.1%} | {_n(p.us_per_msg(t.samples))} |"
              for t in p.threads]
    lines += ["", "| innermost Python function | samples | share |", "|---|---:|---:|"]
    lines += [f"| `{f.name}` | {f.samples:,} | {f.share:.1%} |" for f in p.top]
    return lines


def _load(b: PipelineBench, r: Run) -> str:
    return f"{r.load} #{r.round + 1}" if b.plan.rounds > 1 else r.load


def latency_lines(b: PipelineBench) -> list[str]:
    lines = ["| variant | load | offered msg/s | completed msg/s | sustainable | p50 ms | p90 ms "
             "| p99 ms | p99.9 ms | max ms |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in b.runs:
        if r.phase != "latency":
            continue
        e = r.e2e
        lines.append(
            f"| {r.variant} | {_load(b, r)} | {_n(r.offered_rate, ',.1f')} | "
            f"{_n(r.completed_rate, ',.1f')} | {'yes' if r.sustainable else 'no'} | "
            f"{_ms(e.p50_ms if e else None)} | {_ms(e.p90_ms if e else None)} | "
            f"{_ms(e.p99_ms if e else None)} | {_ms(e.p999_ms if e else None)} | "
            f"{_ms(e.max_ms if e else None)} |")
    return lines


def stage_lines(b: PipelineBench) -> list[str]:
    names = [name for name, _, _ in STAGES]  # queue, kafka, batch_wait, ...
    lines = ["| variant | load | " + " | ".join(f"{n.replace('_', ' ')} p99 ms (mean share)"
                                             for n in names) + " |",
             "|---|---|" + "---:|" * len(names)]
    for r in b.runs:
        if r.phase != "latency" or r.kind != "ours" or not r.stages:
            continue
        by = {s.stage: s for s in r.stages}
        cells = []
        for n in names:
            s = by.get(n)
            share = f" ({s.share_mean:.0%})" if s and s.share_mean is not None else ""
            cells.append(f"{_ms(s.p99_ms)}{share}" if s else "-")
        lines.append(f"| {r.variant} | {_load(b, r)} | " + " | ".join(cells) + " |")
    return lines


def ramp_lines(b: PipelineBench) -> list[str]:
    lines = ["| at min | variant | step | offered msg/s | sent | completed msg/s | backlog slope "
             "msg/s | drained s | sustainable | p99 ms |",
             "|---:|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in b.runs:
        if r.phase == "latency":
            continue
        v = r.verdict
        drained = v.drained_s if v else None
        at = None if r.at_s is None else r.at_s / 60
        lines.append(
            f"| {_n(at, '.1f')} | {r.variant} | {r.phase} | {_n(r.offered_rate, ',.1f')} | "
            f"{r.sent:,} | "
            f"{_n(r.completed_rate, ',.1f')} | {_n(v.slope if v else None, '+.2f')} | "
            f"{_n(drained, '.1f')} | {'-' if v is None else ('yes' if v.sustainable else 'no')} "
            f"| {_ms(r.p99_ms)} |")
    return lines


def header_lines(b: PipelineBench) -> list[str]:
    return [
        f"Command: `{b.command}`  ",
        f"Machine: {b.cpu}, {b.machine.cpu_count} cores, {b.machine.system}; {b.date}  ",
        f"Naive pipeline: Faust agent, one message per call, {b.naive_model}, torch threads "
        f"{b.plan.naive_threads}, one Redis HINCRBY per message, at_least_once  ",
        f"This project's pipeline: `streamer worker` ({b.ours_scorer}), one worker per variant  ",
        *([f"Peer pipeline: {b.peer}; Application + one StreamingDataFrame per input topic + "
           f"a BatchingSink that scores each checkpoint's batch per partition and adds the "
           f"topic and ticker counts in one Redis MULTI, at-least-once; ONNX Runtime intra-op "
           f"threads {b.plan.peer_threads}; end-to-end latency only (no stage stamps), "
           f"measured as the naive pipeline's  "] if b.peer else []),
        f"Load generator: {b.load_generator}, open loop, latency from the intended send time  ",
        f"Ramp: probe, then steps x{b.plan.ramp_factor:g} from {b.plan.ramp_start:g} x the probe "
        f"rate, {b.plan.step_s:g} s each, then {b.plan.refine_steps} bisection step(s) below "
        f"the first that failed; latency runs {b.plan.duration_s:g} s{_rounds(b.plan)}; low "
        f"load = "
        f"{b.plan.low_fraction:.0%} of the naive capacity ({_n(b.low_rate, '.1f')} msg/s), high = "
        f"{b.plan.high_fraction:.0%} of ours' ({_n(b.high_rate, '.1f')} msg/s, ours and the "
        f"peer); wall "
        f"{b.wall_s / 60:.1f} min  ",
        f"Warm-up: {_warmup(b.plan)}  ",
        f"Turns: every variant's worker runs from start to end and the variants take turns, one "
        f"step each (round robin: capacities first, then the fixed loads), so their steps "
        f"share the same minutes of the machine; {idle_cpu(b)}  ",
    ]


def _rounds(p: Plan) -> str:
    if p.rounds <= 1:
        return ""
    return (f", {p.rounds} rounds at each load (the variants in turns; a variant's p99 in "
            "the targets is its median round's)")


def _warmup(p: Plan) -> str:
    if p.warmup_s <= 0:
        return "none (the broker may still be compiling during the first steps)"
    return (f"the Kafka hop alone at {p.warmup_rate:,.0f} msg/s for {p.warmup_s:g} s before "
            "the first step, so that the broker's JIT warm-up is not charged to a variant")


def idle_cpu(b: PipelineBench) -> str:
    """How much the waiting workers took from the one being measured."""
    pct = sorted(r.others_cpu_pct for r in b.runs if r.others_cpu_pct is not None)
    if not pct:
        return "the waiting workers' CPU was not measured"
    return (f"the waiting workers used {pct[len(pct) // 2]:.1f}% of a core (median step; "
            f"max {pct[-1]:.1f}%) while another was measured")


def markdown(b: PipelineBench) -> str:
    lines = [f"# End-to-end pipeline benchmark ({b.date})", "", *header_lines(b), "",
             "## Targets", "", *target_lines(b), "",
             "## Maximum sustainable throughput", "", *capacity_lines(b), "",
             *(["## Against the model alone", "", *bare_lines(b), ""] if b.bare else []),
             *(["## Where the time goes", "", *profile_lines(b), ""] if b.profile else []),
             "## End-to-end latency at fixed offered loads", "", *latency_lines(b), "",
             "## Per stage (ours)", "", *stage_lines(b), "",
             "## Every step", "", *ramp_lines(b), "",
             "## Rules", "",
             f"- sustainable: backlog (scheduled - Redis-updated) slope over the step's second "
             f"half <= max(1, {b.plan.tolerance:g} x rate) msg/s (or the backlog under 1 s of "
             f"load), and drained within "
             f"{b.plan.grace(b.plan.step_s):g} s of the producer's end",
             "- end to end: Redis updated minus the record's timestamp (= its intended send "
             "time: open loop, no coordinated omission); HDR histograms, merged per step",
             f"- adaptive matches the best fixed setting when its p99 is within "
             f"{MATCH_TOLERANCE:.0%}",
             "", "![latency vs load](latency_vs_load.png)", "",
             "![throughput ramp](throughput_ramp.png)", "",
             *(f"- {n}" for n in b.notes)]
    return "\n".join(lines).rstrip() + "\n"


def docs_section(b: PipelineBench, out: Path) -> str:
    """The dated summary for docs/BENCHMARKS.md, between markers (a re-run replaces it)."""
    lines = [DOC_START,
             f"## {b.date[:10]} — end-to-end pipeline: naive vs this project's "
             "(Kafka in, Redis updated; one run)", "", *header_lines(b), "",
             *target_lines(b), "", *capacity_lines(b), "",
             *([*bare_lines(b), ""] if b.bare else []),
             *([*profile_lines(b), ""] if b.profile else []),
             *latency_lines(b), "",
             f"Full report, every ramp step and the plots: `{out}/report.md` (results.json, "
             "latency_vs_load.png, throughput_ramp.png).",
             *(["", *(f"- {n}" for n in b.notes)] if b.notes else []),
             DOC_END]
    return "\n".join(lines) + "\n"


def update_doc(doc: Path, section: str) -> None:
    """Replace the previous pipeline section, or put this one first (newest first)."""
    text = doc.read_text("utf-8") if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(DOC_START) + r".*?" + re.escape(DOC_END) + r"\n?", re.S)
    m = pattern.search(text)
    if m is not None:  # the newest goes first: take the old one out, blank lines too
        text = text[:m.start()].rstrip("\n") + "\n\n" + text[m.end():].lstrip("\n")
    at = text.find("\n## ")
    text = (text.rstrip("\n") + "\n\n" + section) if at < 0 else (
        text[:at + 1] + section + "\n" + text[at + 1:])
    doc.write_text(text, "utf-8")


def write(b: PipelineBench, out: Path) -> list[Path]:
    """results.json, report.md and the plots in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "results.json", out / "report.md"
    js.write_text(b.model_dump_json(indent=2), "utf-8")
    md.write_text(markdown(b), "utf-8")
    return [js, md, *write_plots(b, out)]
