"""Every figure of a GPU check in one list, the GPU targets, and the checks that fail it.

Reads what the earlier steps wrote into the results folder (``environment.json``,
``models/models-*.json`` from ``streamer bench models``, ``e2e.json``) and writes
``figures.json`` (every number, named after its source) and ``summary.md``. On a GPU, a
row that did not run on the GPU (torch without CUDA, onnxruntime falling back to its CPU
provider, a worker that scored on the CPU) is a problem: the check fails, saying which.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from streamer.bench.gpu_check.environment import markdown as env_markdown
from streamer.bench.gpu_check.results import E2eResult, Environment, Figure, Mode, Report, Target
from streamer.bench.models import TENSORRT, ModelBench
from streamer.bench.models import markdown as models_markdown

TORCH_ROW = "GPU: teacher PyTorch FP16 + CUDA graphs"
ORT_CUDA_ROW = "GPU: teacher ONNX Runtime CUDA FP16"
FIXED = ", 64-token texts"
# Issue 32's GPU targets (the same architecture measured by a plain script on an H100).
MODEL_MSGS_PER_S = 100_000.0  # at batch 128, 64-token texts
MODEL_P99_MS = 2.0  # per batch of 32, 64-token texts
WORKER_MSGS_PER_S = 10_000.0  # one GPU worker, end to end


class MissingResults(RuntimeError):
    """A file an earlier step should have written is not there."""


def _load(folder: Path) -> tuple[Environment, ModelBench, str, E2eResult]:
    """The earlier steps' files; the models file's path is relative to ``folder``."""
    env_file, e2e_file = folder / "environment.json", folder / "e2e.json"
    runs = sorted((folder / "models").glob("models-*.json"))
    for path in (env_file, e2e_file):
        if not path.is_file():
            raise MissingResults(f"{path} is missing: its step did not finish")
    if not runs:
        raise MissingResults(f"no models-*.json in {folder / 'models'}: the models benchmark "
                             "did not finish")
    return (Environment.model_validate_json(env_file.read_text("utf-8")),
            ModelBench.model_validate_json(runs[-1].read_text("utf-8")),
            str(runs[-1].relative_to(folder)),
            E2eResult.model_validate_json(e2e_file.read_text("utf-8")))


def figures(bench: ModelBench, e2e: E2eResult, models_file: str) -> list[Figure]:
    out: list[Figure] = []
    for c in bench.cells:
        name = f"models | {c.path} | {c.variant} | batch {c.batch}"
        out += [Figure(name=f"{name} | msg/s", value=c.msgs_per_s, unit="msg/s",
                       source=models_file),
                Figure(name=f"{name} | p50 per batch", value=c.p50_ms, unit="ms",
                       source=models_file),
                Figure(name=f"{name} | p99 per batch", value=c.p99_ms, unit="ms",
                       source=models_file)]
        if c.infer_p99_ms is not None:
            out.append(Figure(name=f"{name} | model p99 per batch", value=c.infer_p99_ms,
                              unit="ms", source=models_file))
    out += [Figure(name="e2e | warm-up burst | msg/s", value=e2e.warmup.completed_rate,
                   unit="msg/s", source="e2e.json"),
            Figure(name="e2e | burst (throughput) | msg/s", value=e2e.throughput_msgs_per_s,
                   unit="msg/s", source="e2e.json"),
            Figure(name="e2e | fixed load | offered msg/s", value=e2e.hold.offered_rate or 0.0,
                   unit="msg/s", source="e2e.json"),
            Figure(name="e2e | fixed load | completed msg/s", value=e2e.hold.completed_rate,
                   unit="msg/s", source="e2e.json")]
    for row in ([e2e.hold.e2e] if e2e.hold.e2e else []) + e2e.hold.stages:
        for q, value in (("p50", row.p50_ms), ("p99", row.p99_ms)):
            out.append(Figure(name=f"e2e | fixed load | {row.stage} {q}", value=value,
                              unit="ms", source="e2e.json"))
    return out


def _cell(bench: ModelBench, path: str, batch: int) -> tuple[float, float, float | None] | None:
    c = next((c for c in bench.cells if c.path == path and c.batch == batch), None)
    return (c.msgs_per_s, c.p99_ms, c.infer_p99_ms) if c else None


def targets(mode: Mode, bench: ModelBench, e2e: E2eResult) -> list[Target]:
    out: list[Target] = []
    for row in (TORCH_ROW, ORT_CUDA_ROW, TENSORRT):
        b128, b32 = _cell(bench, row + FIXED, 128), _cell(bench, row + FIXED, 32)
        why = "dry run: no GPU" if mode == "dry-run" else "row not measured (see the notes)"
        out.append(Target(
            what=f"{row}: msg/s at batch 128, 64-token texts", goal=f">= {MODEL_MSGS_PER_S:,.0f}",
            measured=f"{b128[0]:,.0f}" if b128 else why,
            met=b128[0] >= MODEL_MSGS_PER_S if b128 else None))
        out.append(Target(
            what=f"{row}: p99 per batch of 32, 64-token texts (tokenize + model; model alone)",
            goal=f"<= {MODEL_P99_MS:g} ms",
            measured=(f"{b32[1]:.2f} ms ({b32[2]:.2f} ms)" if b32 and b32[2] is not None
                      else f"{b32[1]:.2f} ms" if b32 else why),
            met=b32[1] <= MODEL_P99_MS if b32 else None))
    on_gpu = mode == "gpu" and _on_gpu(e2e.scorer)
    out.append(Target(
        what=f"one worker end to end ({e2e.scorer}): the burst's msg/s",
        goal=f">= {WORKER_MSGS_PER_S:,.0f} on a GPU",
        measured=f"{e2e.throughput_msgs_per_s:,.0f}" + ("" if on_gpu else " (on the CPU)"),
        met=e2e.throughput_msgs_per_s >= WORKER_MSGS_PER_S if on_gpu else None))
    return out


def _on_gpu(scorer: str) -> bool:
    return scorer.startswith(("onnx-cuda", "onnx-tensorrt", "torch-cuda"))


def problems(mode: Mode, bench: ModelBench, e2e: E2eResult, figs: list[Figure]) -> list[str]:
    out = [f"{f.name} is {f.value}: not a measurement" for f in figs
           if not math.isfinite(f.value) or f.value < 0]
    out += [f"{f.name} is 0" for f in figs if f.unit == "msg/s" and f.value == 0]
    if e2e.hold.completed < e2e.hold.sent:
        out.append(f"the end-to-end run lost messages: {e2e.hold.completed} of {e2e.hold.sent} "
                   "completed at the fixed load")
    if mode != "gpu":
        return out
    for row, prefix, words in ((TORCH_ROW, "torch-cuda", ("PyTorch",)),
                               (ORT_CUDA_ROW, "onnx-cuda", ("ONNX Runtime CUDA",
                                                            "ONNX Runtime GPU"))):
        cells = [c for c in bench.cells if c.path.startswith(row)]
        if not cells:  # the benchmark's note says why it left the row out
            why = [n for n in bench.notes if "left out" in n and any(w in n for w in words)]
            out.append(f"no '{row}' rows: {'; '.join(why) or 'see the models benchmark'}")
        elif not all(c.variant.startswith(prefix) for c in cells):
            out.append(f"the '{row}' rows ran as {cells[0].variant}, not on the GPU")
    if not _on_gpu(e2e.scorer):
        out.append(f"the end-to-end worker scored with {e2e.scorer}, not on the GPU: see its "
                   "log (worker.log) for why onnxruntime fell back")
    return out


def summarize(folder: Path, mode: Mode, *, wall_s: float | None = None,
              steps_s: dict[str, float] | None = None
              ) -> tuple[Report, ModelBench, E2eResult]:
    env, bench, models_file, e2e = _load(folder)
    figs = figures(bench, e2e, models_file)
    notes = list(bench.notes)
    if e2e.hold.verdict is not None and not e2e.hold.sustainable:
        notes.append(f"the end-to-end fixed load was not sustainable: {e2e.hold.verdict.reason}")
    report = Report(mode=mode, date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    wall_s=wall_s, steps_s=steps_s or {}, environment=env, figures=figs,
                    targets=targets(mode, bench, e2e), notes=notes,
                    problems=problems(mode, bench, e2e, figs))
    return report, bench, e2e


def markdown(report: Report, bench: ModelBench, e2e: E2eResult) -> str:
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in report.steps_s.items()) or "-"
    if report.wall_s is not None:
        steps += f"; wall time before the summary {report.wall_s:.0f} s"
    lines = [f"# GPU check ({report.mode}), {report.date}", "",
             env_markdown(report.environment), f"Steps: {steps}",
             "", "## Models (`streamer bench models`)", "", models_markdown(bench),
             "## One worker end to end", "",
             f"Scorer {e2e.scorer}; bundle {e2e.bundle}; load generator {e2e.load_generator}; "
             f"{e2e.partitions} partitions per input topic.", "",
             "| step | sent | completed | offered msg/s | completed msg/s | p50 ms | p99 ms "
             "| max ms |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in (("warm-up burst", e2e.warmup), ("burst", e2e.burst),
                      (f"fixed load ({run_load(e2e)})", e2e.hold)):
        lat = run.e2e
        offered = f"{run.offered_rate:,.1f}" if run.offered_rate else "as fast as possible"
        lines.append(f"| {name} | {run.sent:,} | {run.completed:,} | {offered} | "
                     f"{run.completed_rate:,.1f} | "
                     + (f"{lat.p50_ms:,.1f} | {lat.p99_ms:,.1f} | {lat.max_ms:,.1f} |" if lat
                        else "- | - | - |"))
    if e2e.hold.stages:
        lines += ["", "Per stage at the fixed load: " + ", ".join(
            f"{s.stage} p50 {s.p50_ms:,.2f} / p99 {s.p99_ms:,.2f} ms"
            + (f" ({s.share_mean:.0%} of the mean)" if s.share_mean is not None else "")
            for s in e2e.hold.stages)]
    lines += ["", "## GPU targets (issue 32)", "", "| what | goal | measured | met |",
              "|---|---|---|---|"]
    for t in report.targets:
        met = "-" if t.met is None else ("yes" if t.met else "**no**")
        lines.append(f"| {t.what} | {t.goal} | {t.measured} | {met} |")
    lines += ["", *(f"- note: {n}" for n in report.notes)]
    lines += [f"- **problem**: {p}" for p in report.problems]
    return "\n".join(lines) + "\n"


def run_load(e2e: E2eResult) -> str:
    return e2e.hold.load or "fixed"


def write(folder: Path, mode: Mode, *, wall_s: float | None = None,
          steps_s: dict[str, float] | None = None) -> Report:
    report, bench, e2e = summarize(folder, mode, wall_s=wall_s, steps_s=steps_s)
    (folder / "figures.json").write_text(report.model_dump_json(indent=2) + "\n", "utf-8")
    (folder / "summary.md").write_text(markdown(report, bench, e2e), "utf-8")
    return report
