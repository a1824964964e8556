"""``streamer bench``: benchmarks that write Markdown + JSON for docs/BENCHMARKS.md."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from rich.table import Table

from streamer.cli.common import console, fail, number_list, settings_with


@click.group("bench", context_settings={"help_option_names": ["-h", "--help"]})
def bench() -> None:
    """Measure speed (never a timed test: figures go to docs/BENCHMARKS.md)."""


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
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for models-DATE.md/.json [default: <data dir>/bench].")
def models_bench(bundle_dir: Path | None, threads: int, n_texts: int, naive_texts: int,
                 batches: str, rounds: int, no_naive: bool, out: Path | None) -> None:
    """The naive path (transformers FP32, one message per call) against the ONNX
    teacher and the INT8 student with and without length bucketing."""
    from streamer.bench import models as mb
    from streamer.models.bundle import BundleError
    from streamer.models.quick import default_bundle_path

    s = settings_with()
    bundle_dir = bundle_dir or default_bundle_path(s)
    sizes = number_list(batches, int, "--batches")
    try:
        examples = mb.sample(bundle_dir, n_texts)
        result = mb.run(
            bundle_dir, examples, threads=threads, batches=sizes, naive_texts=naive_texts,
            include_naive=not no_naive, rounds=rounds,
            command=shlex.join(["streamer", *sys.argv[1:]]),
            progress=lambda msg: console.print(f"[dim]measuring[/] {msg}"),
        )
    except (BundleError, FileNotFoundError) as exc:
        fail(f"{exc}\nBuild a bundle first: streamer models build --profile full")
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
    md, js = mb.write(result, out or s.data_dir / "bench")
    console.print(f"wrote {md} and {js}")
