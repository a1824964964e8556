"""scripts/gpu-check.sh: its dry run does every step for real on a CPU, and a failed step
says which, in one line.

The dry run uses this session's servers (KAFKA_BOOTSTRAP, REDIS_URL: real Kafka and Redis
from tests/servers.py) and its TINY bundle (built for real by the ``tiny_build`` fixture),
so it costs the setup check, the models benchmark with few texts and a few seconds of one
worker. The figures are read back from the files it wrote and matched against the raw
results they come from: they are what this run measured.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from streamer.bench.gpu_check.results import E2eResult, Environment, Report
from streamer.bench.models import NAIVE, ModelBench

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu-check.sh"
STEPS = ["setup", "environment", "bundle", "bench models", "stack", "end to end"]


def gpu_check(args: list[str], env: dict[str, str], timeout: float
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env={**os.environ, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _log_tail(out: Path, n: int = 60) -> str:
    log = out / "gpu-check.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:]) if log.is_file() else ""


@pytest.mark.slow
def test_the_dry_run_writes_the_environment_and_the_figures_it_measured(
    tmp_path: Path, tiny_bundle: Path, kafka_bootstrap: str, redis_url: str,
) -> None:
    out = tmp_path / "results"
    proc = gpu_check(["--dry-run", "--bundle", str(tiny_bundle)],
                     {"OUT": str(out), "KAFKA_BOOTSTRAP": kafka_bootstrap,
                      "REDIS_URL": redis_url}, timeout=540)
    assert proc.returncode == 0, f"{proc.stderr}\n--- log ---\n{_log_tail(out)}"
    assert "gpu-check (dry-run): passed in" in proc.stdout

    env = Environment.model_validate_json((out / "environment.json").read_text())
    assert env.mode == "dry-run" and env.python == platform.python_version()
    for name in ("streamer", "torch", "transformers", "onnxruntime"):
        assert env.packages[name] == metadata.version(name)
    assert env.cpu_count == os.cpu_count() and env.cpu
    assert "CPUExecutionProvider" in env.ort_providers
    if shutil.which("nvidia-smi") is None:
        assert env.gpus == [] and env.driver is None and not env.torch_cuda_available
        assert any("nvidia-smi not found" in n for n in env.notes)

    report = Report.model_validate_json((out / "figures.json").read_text())
    bench = ModelBench.model_validate_json(
        next((out / "models").glob("models-*.json")).read_text())
    e2e = E2eResult.model_validate_json((out / "e2e.json").read_text())
    assert report.mode == "dry-run" and report.problems == []
    assert report.environment == env
    assert list(report.steps_s) == STEPS and all(s >= 0 for s in report.steps_s.values())
    assert report.wall_s is not None and report.wall_s > 0

    # The models benchmark: the CPU rows on the tiny bundle, few texts, every figure in the
    # list as the benchmark measured it.
    assert "--texts 64" in bench.command
    assert Path(bench.bundle).resolve() == tiny_bundle.resolve()
    assert {c.path for c in bench.cells} >= {NAIVE, "student ONNX INT8, one text per call "
                                             "(deployed)"}
    assert {c.batch for c in bench.cells if c.path != NAIVE} == {1, 8, 32}
    assert any("no CUDA" in n for n in bench.notes)  # the GPU rows say why they are absent
    figures = {f.name: f for f in report.figures}
    for c in bench.cells:
        name = f"models | {c.path} | {c.variant} | batch {c.batch}"
        assert figures[f"{name} | msg/s"].value == c.msgs_per_s > 0
        assert figures[f"{name} | p99 per batch"].value == c.p99_ms >= c.p50_ms > 0
    assert all(math.isfinite(f.value) and f.value >= 0 for f in report.figures)

    # One worker end to end on the session's servers: nothing lost, real latencies.
    assert e2e.scorer.startswith("onnx-cpu:")
    assert Path(e2e.bundle) == tiny_bundle.resolve()
    for run in (e2e.warmup, e2e.burst, e2e.hold):
        assert run.sent > 0 and run.completed == run.sent
    assert e2e.throughput_msgs_per_s == e2e.burst.completed_rate > 0
    assert figures["e2e | burst (throughput) | msg/s"].value == e2e.throughput_msgs_per_s
    assert e2e.hold.offered_rate == pytest.approx(0.5 * e2e.throughput_msgs_per_s, abs=0.1)
    lat = e2e.hold.e2e
    assert lat is not None and lat.count > 0 and 0 < lat.p50_ms <= lat.p99_ms
    assert figures["e2e | fixed load | end_to_end p99"].value == lat.p99_ms
    assert {s.stage for s in e2e.hold.stages} >= {"tokenize", "infer", "aggregate"}

    # No GPU: every GPU target says it was not measured; none is claimed.
    assert report.targets and all(t.met is None for t in report.targets)
    summary = (out / "summary.md").read_text()
    assert "## GPU targets (issue 32)" in summary and "dry run: no GPU" in summary
    assert (out / "worker.log").is_file()  # empty when the worker had nothing to warn of
    print(summary)

    # The same files judged as a GPU run: the checks that fail a GPU run whose rows or
    # worker ran on the CPU, each saying why, and one line for the script to show.
    as_gpu = tmp_path / "as-gpu"
    shutil.copytree(out, as_gpu)
    judged = subprocess.run([sys.executable, "-m", "streamer.bench.gpu_check", "summary",
                             "--results", str(as_gpu), "--mode", "gpu"],
                            capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert judged.returncode == 1
    assert judged.stderr.strip().splitlines() == [judged.stderr.strip()]
    problems = Report.model_validate_json((as_gpu / "figures.json").read_text()).problems
    assert len(problems) == 3
    assert problems[0].startswith("no 'GPU: teacher PyTorch FP16 + CUDA graphs' rows: ")
    assert "no CUDA GPU for torch here" in problems[0]
    assert problems[1].startswith("no 'GPU: teacher ONNX Runtime CUDA FP16' rows: ")
    assert problems[2].startswith(f"the end-to-end worker scored with {e2e.scorer}, not on")


def test_a_failed_step_stops_the_check_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = gpu_check(["--dry-run"], {"OUT": str(out),
                                     "STREAMER_LABELLED_DATA_DIR": str(tmp_path / "no-data")},
                     timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("gpu-check: FAILED: step 'setup' (exit 66")
    assert "no labelled data at" in lines[0] and str(out / "gpu-check.log") in lines[0]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a driver")
def test_without_a_gpu_the_gpu_mode_stops_before_installing_anything(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = gpu_check([], {"OUT": str(out)}, timeout=60)
    assert proc.returncode == 1 and not out.exists()
    assert proc.stderr.strip().splitlines() == [
        "gpu-check: FAILED: no NVIDIA driver here (nvidia-smi not found): run this on a machine "
        "with a CUDA GPU, or use --dry-run on a CPU"]


def test_usage_is_the_scripts_header_and_unknown_arguments_are_refused() -> None:
    proc = gpu_check(["--help"], {}, timeout=30)
    assert proc.returncode == 0 and "--dry-run" in proc.stdout and "OUT" in proc.stdout
    bad = gpu_check(["--nope"], {}, timeout=30)
    assert bad.returncode == 2 and "unknown argument --nope" in bad.stderr
