"""``python -m streamer.bench.gpu_check env|e2e|summary``: the Python steps of gpu-check.sh.

Each writes one file of the results folder and fails as every ``streamer`` command does:
one line on stderr (``error: what; what to do: the fix``) and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import click

from streamer.settings import get_settings

MODES = click.Choice(["gpu", "dry-run"])


def fail(message: str, hint: str | None = None, code: int = 1) -> NoReturn:
    """One line on stderr, as the ``streamer`` commands say it (streamer.cli.common, which
    the bench package may not import: the cli imports the bench)."""
    text = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"error: {text}" + (f"; what to do: {hint}" if hint else ""), file=sys.stderr)
    raise SystemExit(code)


def say(message: str) -> None:
    print(message, flush=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """The steps of scripts/gpu-check.sh that are Python."""


@cli.command("env")
@click.option("--mode", type=MODES, required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="environment.json to write.")
def env_cmd(mode: str, out: Path) -> None:
    """The machine, the GPU and the library versions; on a GPU, fails when torch sees none."""
    from streamer.bench.gpu_check.environment import collect, markdown, problems

    env = collect(mode)  # type: ignore[arg-type]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(env.model_dump_json(indent=2) + "\n", "utf-8")
    say(markdown(env))
    say(f"wrote {out}")
    found = problems(env) if mode == "gpu" else []
    if found:
        fail(found[0])


@cli.command("e2e")
@click.option("--bundle", type=click.Path(file_okay=False, exists=True, path_type=Path),
              required=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="e2e.json to write; the worker's log goes beside it (worker.log).")
@click.option("--scorer", default="onnx", show_default=True, help="STREAMER_SCORER.")
@click.option("--variant", "bundle_variant", default="auto", show_default=True,
              help="STREAMER_BUNDLE_VARIANT (auto: FP16 on a GPU, else the CPU default).")
@click.option("--warmup", type=int, default=200, show_default=True,
              help="Messages of the warm-up burst.")
@click.option("--burst-s", type=float, default=5.0, show_default=True,
              help="The burst's length at the warm-up's rate.")
@click.option("--max-burst", type=int, default=60_000, show_default=True)
@click.option("--hold-s", type=float, default=10.0, show_default=True,
              help="Length of the fixed load.")
@click.option("--share", type=float, default=0.5, show_default=True,
              help="The fixed load, x the burst's drain rate.")
def e2e_cmd(bundle: Path, out: Path, scorer: str, bundle_variant: str, warmup: int,
            burst_s: float, max_burst: int, hold_s: float, share: float) -> None:
    """One worker on the running Kafka + Redis: a warm-up, a burst, a fixed load."""
    from streamer.bench.gpu_check.e2e import run_e2e
    from streamer.bench.pipeline.errors import BenchError

    out.parent.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="gpu-check-worker-"))
    try:
        try:
            result = asyncio.run(run_e2e(
                get_settings(), bundle.resolve(), logs, scorer=scorer,
                bundle_variant=bundle_variant, warmup=warmup, burst_s=burst_s,
                max_burst=max_burst, hold_s=hold_s, share=share, say=say))
        except BenchError as exc:  # StackDown too: its message says what to start
            fail(str(exc).splitlines()[0], f"see {out.parent / 'worker.log'} and gpu-check.log")
    finally:
        with (out.parent / "worker.log").open("ab") as dest:  # every worker this run started
            for log in sorted(logs.glob("*.log")):
                dest.write(log.read_bytes())
        shutil.rmtree(logs, ignore_errors=True)
    out.write_text(result.model_dump_json(indent=2) + "\n", "utf-8")
    h = result.hold
    say(f"one worker ({result.scorer}): burst of {result.burst.sent:,} messages drained at "
        f"{result.throughput_msgs_per_s:,.1f} msg/s; fixed load {h.offered_rate or 0:,.1f} "
        f"msg/s: p50 {h.e2e.p50_ms if h.e2e else 0:,.1f} ms, p99 "
        f"{h.e2e.p99_ms if h.e2e else 0:,.1f} ms end to end")
    say(f"wrote {out}")


@cli.command("summary")
@click.option("--results", type=click.Path(file_okay=False, exists=True, path_type=Path),
              required=True)
@click.option("--mode", type=MODES, required=True)
@click.option("--wall-s", type=float, default=None, help="The script's time so far.")
@click.option("--step", "steps", multiple=True, help="NAME=SECONDS, one per step so far.")
def summary_cmd(results: Path, mode: str, wall_s: float | None, steps: tuple[str, ...]) -> None:
    """figures.json and summary.md from the steps' files; fails on a problem."""
    from pydantic import ValidationError

    from streamer.bench.gpu_check.summary import MissingResults, write

    steps_s = {}
    for item in steps:
        name, _, seconds = item.partition("=")
        try:
            steps_s[name] = float(seconds)
        except ValueError:
            fail(f"--step {item!r} is not NAME=SECONDS", code=2)
    try:
        report = write(results, mode, wall_s=wall_s, steps_s=steps_s)  # type: ignore[arg-type]
    except (MissingResults, ValidationError) as exc:
        fail(str(exc).splitlines()[0], "rerun scripts/gpu-check.sh; its log says which step "
             "failed")
    say(f"wrote {results / 'figures.json'} ({len(report.figures)} figures) and "
        f"{results / 'summary.md'}")
    if report.problems:
        fail(report.problems[0] + (f" (and {len(report.problems) - 1} more in summary.md)"
                                   if len(report.problems) > 1 else ""))


if __name__ == "__main__":
    cli()
