"""``streamer bench``: benchmarks that write Markdown + JSON for docs/BENCHMARKS.md."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table
from rich.text import Text

from streamer.cli.bench_costs_cmd import costs_bench
from streamer.cli.common import console, fail, number_list, settings_with

if TYPE_CHECKING:
    from streamer.bench.pipeline.results import PipelineBench


@click.group("bench", context_settings={"help_option_names": ["-h", "--help"]},
             commands=[costs_bench],
             invoke_without_command=True)
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Measure speed (never a timed test: figures go to docs/BENCHMARKS.md).

    Without a subcommand: `streamer bench pipeline` with its defaults."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(pipeline_bench)


@bench.command("models")
@click.option("--bundle", "bundle_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Bundle [default: the worker's: $STREAMER_BUNDLE_DIR, a complete "
              "full build, else the quick default].")
@click.option("--threads", type=int, default=2, show_default=True,
              help="CPU threads for every path (torch and ONNX Runtime intra-op).")
@click.option("--texts", "n_texts", type=int, default=1024, show_default=True,
              help="Validation texts scored by every batched path.")
@click.option("--naive-texts", type=int, default=256, show_default=True,
              help="Texts for the slow naive path (one call each).")
@click.option("--batches", default="1,8,32,128", show_default=True,
              help="Batch sizes, comma-separated.")
@click.option("--rounds", type=int, default=3, show_default=True,
              help="Interleaved rounds; each cell reports its median round.")
@click.option("--no-naive", is_flag=True, help="Leave out the naive PyTorch path "
              "(it needs the train extra).")
@click.option("--no-cpu", is_flag=True, help="Leave out the ONNX CPU rows (teacher FP32, "
              "student INT8): on a GPU, the GPU rows (and the naive path) alone.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for models-DATE.md/.json [default: <data dir>/bench].")
def models_bench(bundle_dir: Path | None, threads: int, n_texts: int, naive_texts: int,
                 batches: str, rounds: int, no_naive: bool, no_cpu: bool,
                 out: Path | None) -> None:
    """The naive path (transformers FP32, one message per call) against the ONNX
    teacher and the INT8 student with and without length bucketing."""
    from streamer.bench import models as mb
    from streamer.bundle.errors import BundleError
    from streamer.bundle.locate import default_bundle_path

    s = settings_with()
    bundle_dir = bundle_dir or default_bundle_path(s)
    sizes = number_list(batches, int, "--batches")
    try:
        examples = mb.sample(bundle_dir, n_texts)
        result = mb.run(
            bundle_dir, examples, threads=threads, batches=sizes, naive_texts=naive_texts,
            include_naive=not no_naive, include_cpu=not no_cpu, rounds=rounds,
            command=shlex.join(["streamer", *sys.argv[1:]]),
            progress=lambda msg: console.print(f"[dim]measuring[/] {msg}"),
        )
    except (BundleError, FileNotFoundError) as exc:
        fail(str(exc), "build a bundle first: streamer models build --profile full")
    table = Table(title=f"Inference on {result.texts} validation texts, {threads} thread(s)")
    for col in ("path", "variant", "batch", "msg/s", "p50 ms", "p99 ms", "x naive"):
        table.add_column(col, justify="left" if col in ("path", "variant") else "right")
    for c in result.cells:
        table.add_row(c.path, c.variant, str(c.batch), f"{c.msgs_per_s:,.0f}",
                      f"{c.p50_ms:.2f}", f"{c.p99_ms:.2f}",
                      f"{c.speedup:.1f}" if c.speedup is not None else "-")
    console.print(table)
    for note in result.notes:
        console.print(f"- {note}")
    md, js = mb.write(result, out or s.paths.data_dir / "bench")
    console.print(f"wrote {md} and {js}")


@bench.command("pipeline")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: bench-out/pipeline-DATE].")
@click.option("--duration-s", type=float, default=None,
              help="Hold time of each fixed-load latency run [default: 30; --quick 10].")
@click.option("--step-s", type=float, default=None,
              help="Hold time of each ramp step [default: 30; --quick 8].")
@click.option("--loads", default="", help="Extra fixed offered loads (msg/s, comma-separated) "
              "for every variant whose capacity reaches them.")
@click.option("--variants", default=None, help="Comma-separated: naive, adaptive, "
              "fixed-SIZExWAITms, quix[-SIZExWAITms] (the Quix Streams peer, checkpointing every "
              "SIZE messages or WAIT ms; quix: 64x50ms; needs the peer extra) [default: naive,"
              "adaptive,quix,fixed-8x5ms,fixed-32x20ms,fixed-64x50ms; --quick: naive,adaptive,"
              "quix,fixed-32x20ms; quix only when Quix Streams is installed].")
@click.option("--max-steps", type=int, default=None, help="Most ramp steps per variant "
              "[default: 8; --quick 4].")
@click.option("--refine-steps", type=int, default=2, show_default=True, help="Bisection "
              "steps after the ramp, between its highest sustainable step and the lowest "
              "unsustainable one.")
@click.option("--probe-s", type=float, default=None,
              help="Target length of the saturation probe [default: 10; --quick 4].")
@click.option("--warmup-s", type=float, default=None, help="The broker's warm-up before the "
              "first step (the Kafka hop alone; 0: none) [default: 30; --quick 5].")
@click.option("--latency-target-ms", type=float, default=100.0, show_default=True,
              help="STREAMER_LATENCY_TARGET_MS of the adaptive variant.")
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="Latency runs per "
              "variant at each fixed load, in turns; the targets compare median rounds "
              "[default: 3; --quick 1].")
@click.option("--naive-bundle", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Bundle whose PyTorch teacher the naive pipeline runs [default: the full "
              "bundle, else the worker's].")
@click.option("--bare-s", type=float, default=None, help="The bare model (tokenize + infer "
              "alone, no Kafka, no Redis, at each of this project's variants' batch sizes, "
              "after the workers stop): hold time per size and round [default: 10; --quick 4].")
@click.option("--no-bare", is_flag=True, help="Leave the bare model out.")
@click.option("--profile", "profile_variant", default="adaptive", show_default=True,
              help="This project's variant whose worker gets one more step at 90% of its "
              "capacity with py-spy attached (the dev extra): its CPU by category and its "
              "stages' shares.")
@click.option("--no-profile", is_flag=True, help="No CPU profile step.")
@click.option("--quick", is_flag=True, help="Short steps and three variants (~3-5 minutes).")
@click.option("--docs", "docs_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Summary goes into this file [default: docs/BENCHMARKS.md].")
@click.option("--no-docs", is_flag=True, help="Leave docs/BENCHMARKS.md alone.")
def pipeline_bench(out: Path | None = None, duration_s: float | None = None,
                   step_s: float | None = None, loads: str = "", variants: str | None = None,
                   max_steps: int | None = None, refine_steps: int = 2,
                   probe_s: float | None = None, warmup_s: float | None = None,
                   latency_target_ms: float = 100.0, rounds: int | None = None,
                   naive_bundle: Path | None = None, bare_s: float | None = None,
                   no_bare: bool = False, profile_variant: str = "adaptive",
                   no_profile: bool = False,
                   quick: bool = False, docs_file: Path | None = None,
                   no_docs: bool = False) -> None:
    """End to end against the running local Kafka + Redis: the naive pipeline (a Faust agent,
    transformers PyTorch FP32 one message at a time, a Redis update per message), the Quix
    Streams peer (the same job as its documentation recommends, the worker's ONNX model on
    batches; the peer extra) and this project's worker (fixed batching settings and adaptive
    batching), on the same demo messages. Finds each one's maximum sustainable throughput (a
    ramp of offered loads) and end-to-end latency at fixed loads; then profiles one worker
    under load (py-spy) and measures the bare model (tokenize + infer alone) at the workers'
    batch sizes; writes results.json, report.md and PNG plots."""
    from datetime import UTC, datetime

    from rich.live import Live

    from streamer.bench.pipeline.errors import BenchError
    from streamer.bench.pipeline.processes import REPO
    from streamer.bench.pipeline.report import docs_section, markdown, update_doc, write
    from streamer.bench.pipeline.results import Plan
    from streamer.bench.pipeline.run import run_pipeline_bench
    from streamer.bench.pipeline.variants import default_variants
    from streamer.cli.common import run
    from streamer.latency.charts import require_matplotlib

    require_matplotlib()  # before a run of many minutes, not after it
    s = settings_with()
    left_out: str | None = None
    if variants:
        names = [n.strip() for n in variants.split(",") if n.strip()]
    else:
        names, left_out = default_variants(quick)
        if left_out:
            console.print(left_out, highlight=False, markup=False)
    plan = Plan(
        variants=names,
        step_s=step_s or (8.0 if quick else 30.0),
        duration_s=duration_s or (10.0 if quick else 30.0),
        probe_s=probe_s or (4.0 if quick else 10.0),
        max_steps=max_steps or (4 if quick else 8),
        refine_steps=refine_steps,
        warmup_s=warmup_s if warmup_s is not None else (5.0 if quick else 30.0),
        ramp_factor=1.25 if quick else 1.15,
        loads=number_list(loads, float, "--loads") if loads else [],
        latency_target_ms=latency_target_ms,
        rounds=rounds or (1 if quick else 3),
        quick=quick,
        bare=not no_bare,
        bare_s=bare_s or (4.0 if quick else 10.0),
        bare_messages=1000 if quick else 2000,
        profile=None if no_profile else profile_variant,
    )
    out = out or Path("bench-out") / f"pipeline-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    command = shlex.join(["streamer", *sys.argv[1:]])
    line = Table.grid()
    with Live(line, console=console, transient=True, refresh_per_second=4) as live:
        # plain text: "[adaptive] ..." is a variant's name, not rich markup
        def status(msg: str) -> None:
            live.update(Text(msg, style="dim"))

        def say(msg: str) -> None:
            live.console.print(msg, highlight=False, markup=False)

        try:
            result = run(run_pipeline_bench(s, plan, out, command=command,
                                            naive_path=naive_bundle, say=say, status=status))
        except BenchError as exc:
            live.stop()
            fail(str(exc))
            return
    if left_out:
        result.notes.append(left_out)
    for path in write(result, out):
        console.print(f"wrote {path}")
    # The summary as before (to the latency table), less the two new sections, which
    # follow as tables.
    text = markdown(result).split("## Per stage")[0]
    for extra in ("## Against the model alone", "## Where the time goes"):
        if extra in text:
            head, _, rest = text.partition(extra)
            text = head + rest[rest.find("## End-to-end latency"):]
    console.print(text, highlight=False)
    print_overhead(result)
    if not no_docs:
        doc = docs_file or REPO / "docs" / "BENCHMARKS.md"
        update_doc(doc, docs_section(result, out))
        console.print(f"updated {doc}")


def print_overhead(result: PipelineBench) -> None:
    """The bare model beside the workers, and where the profiled worker's time went."""
    if result.bare:
        t = Table(title="End to end against the model alone (tokenize + infer, no Kafka, "
                  "no Redis)")
        for col in ("variant", "batch", "from", "bare msg/s", "tokenize share",
                    "end-to-end msg/s", "e2e / bare"):
            t.add_column(col, justify="left" if col in ("variant", "from") else "right")
        for r in result.bare:
            t.add_row(r.variant, str(r.size), r.size_from, _n(r.bare_msgs_per_s),
                      "-" if r.tokenize_share is None else f"{r.tokenize_share:.0%}",
                      _n(r.e2e_msgs_per_s), "-" if r.ratio is None else f"{r.ratio:.2f}")
        console.print(t)
    p = result.profile
    if p is None:
        return
    stages = Table(title=f"{p.variant} at {p.offered_rate:,.1f} msg/s: the worker's stages")
    for col in ("stage", "mean ms", "p99 ms", "mean share"):
        stages.add_column(col, justify="left" if col == "stage" else "right")
    for st in p.stages:
        stages.add_row(st.stage, f"{st.mean_ms:.1f}", f"{st.p99_ms:.1f}",
                       "-" if st.share_mean is None else f"{st.share_mean:.0%}")
    console.print(stages)
    cpu = Table(title=f"{p.variant}: CPU by category ({p.tool}, {p.samples:,} samples, "
                f"{p.messages:,} messages)")
    for col in ("category", "share", "us/msg", "thread", "share ", "us/msg "):
        cpu.add_column(col, justify="left" if col in ("category", "thread") else "right")
    for i in range(max(len(p.categories), len(p.threads))):
        c = p.categories[i] if i < len(p.categories) else None
        th = p.threads[i] if i < len(p.threads) else None
        cpu.add_row(c.name if c else "", f"{c.share:.1%}" if c else "",
                    _n(p.us_per_msg(c.samples)) if c else "",
                    th.name if th else "", f"{th.share:.1%}" if th else "",
                    _n(p.us_per_msg(th.samples)) if th else "")
    console.print(cpu)


def _n(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"
