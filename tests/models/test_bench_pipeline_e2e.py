"""`streamer bench pipeline` end to end, in a tiny configuration: the real CLI against the
test Kafka and Redis; the naive pipeline runs the tiny bundle's PyTorch teacher, this
project's worker the Naive Bayes baseline (the tiny bundle would do too, slower to load)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_the_pipeline_benchmark_runs_end_to_end(
    kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path,
) -> None:
    out, doc = tmp_path / "out", tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## 2026-11-23 — older\n\nOld.\n")
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap, "REDIS_URL": redis_url,
           "STREAMER_SCORER": "baseline", "STREAMER_DATA_DIR": str(tmp_path / "data"),
           "STREAMER_COMMIT_INTERVAL_S": "0.5"}
    cmd = [sys.executable, "-m", "streamer.cli.main", "bench", "pipeline", "--quick",
           "--variants", "naive,adaptive,fixed-8x5ms", "--step-s", "3", "--duration-s", "3",
           "--probe-s", "2", "--max-steps", "2", "--naive-bundle", str(tiny_bundle),
           "--out", str(out), "--docs", str(doc)]
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    # the steps interleave, so each progress line names its variant
    assert "[adaptive] ramp" in proc.stdout and "[naive] ramp" in proc.stdout

    res = json.loads((out / "results.json").read_text())
    assert [v["name"] for v in res["variants"]] == ["naive", "adaptive", "fixed-8x5ms"]
    for v in res["variants"]:
        assert v["probe_rate"] > 1, v
        assert v["capacity"] is None or v["capacity_completed"] > 0
        assert isinstance(v["limit_found"], bool)
    runs = res["runs"]
    for r in runs:
        assert r["sent"] > 0 and r["completed"] == r["sent"], r  # every message reached Redis
        assert r["samples"] and r["e2e"]["count"] == r["sent"], r  # one latency per message
        assert 0 < r["e2e"]["p50_ms"] <= r["e2e"]["p99_ms"] <= r["e2e"]["max_ms"] < 120_000
        if r["kind"] == "ours":
            assert {s["stage"] for s in r["stages"]} >= {"kafka", "batch_wait", "aggregate"}
    # the variants took turns: their capacity steps interleave, and every capacity step came
    # before the first fixed-load step; the waiting workers' CPU was measured for each step
    at = {name: [r["at_s"] for r in runs if r["variant"] == name and r["phase"] != "latency"]
          for name in ("adaptive", "fixed-8x5ms")}
    assert min(at["fixed-8x5ms"]) < max(at["adaptive"]), at
    assert min(at["adaptive"]) < max(at["fixed-8x5ms"]), at
    first_latency = min(r["at_s"] for r in runs if r["phase"] == "latency")
    assert all(r["at_s"] < first_latency for r in runs if r["phase"] != "latency")
    assert all(r["others_cpu_pct"] is not None and r["others_cpu_pct"] >= 0 for r in runs)
    phases = {(r["variant"], r["phase"], r["load"]) for r in runs}
    assert ("naive", "latency", "low") in phases
    for name in ("adaptive", "fixed-8x5ms"):
        assert {(name, "latency", "low"), (name, "latency", "high")} <= phases
    low = [r["offered_rate"] for r in runs if r["load"] == "low"]
    assert len(set(low)) == 1 and low[0] == pytest.approx(res["low_rate"])
    t = res["targets"]
    assert t["p99_ratio"] is not None and t["p99_ratio"] > 0
    assert [c["load"] for c in t["adaptive_vs_fixed"]] == ["low", "high"]

    report = (out / "report.md").read_text()
    assert "## Targets" in report and "adaptive vs best fixed" in report
    for png in ("latency_vs_load.png", "throughput_ramp.png"):
        assert (out / png).stat().st_size > 10_000
    assert (out / "logs").is_dir()
    text = doc.read_text()
    assert text.index("end-to-end pipeline") < text.index("## 2026-11-23 — older")
