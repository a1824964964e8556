"""`streamer bench pipeline`, the pure parts: the sustainability rule, targets, report, docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.bench.kafka_hop import kafka_hop
from streamer.bench.pipeline.cpu import group_cpu_s
from streamer.bench.pipeline.errors import BenchError
from streamer.bench.pipeline.report import DOC_START, docs_section, markdown, update_doc, write
from streamer.bench.pipeline.results import (
    PipelineBench,
    Plan,
    Run,
    Sample,
    VariantResult,
    Verdict,
)
from streamer.bench.pipeline.variants import variant
from streamer.bench.pipeline.verdicts import (
    capacity,
    compare,
    drain_rate,
    judge,
    latency_run,
    refine_rate,
    slope,
    targets,
)
from streamer.latency.report import StageLatency
from streamer.settings import Settings
from streamer.training.card import machine_info


def series(backlogs: list[int], every: float = 0.5) -> list[Sample]:
    return [Sample(t=(i + 1) * every, done=0, backlog=b) for i, b in enumerate(backlogs)]


def test_a_flat_backlog_that_drains_is_sustainable() -> None:
    # 20 s at 100 msg/s, batches of ~30 in flight: the backlog wobbles but does not grow
    samples = series([30, 5, 28, 12, 31, 3] * 7)[:40]
    v = judge(samples, rate=100, duration_s=20, drained_s=0.4, grace_s=3)
    assert v.sustainable and abs(v.slope) < v.limit and "drained in 0.4 s" in v.reason


def test_a_growing_backlog_is_not_sustainable_even_when_it_drains_later() -> None:
    # 10% over capacity at 100 msg/s: the backlog grows 10 msg/s
    samples = series([int(10 * 0.5 * (i + 1)) for i in range(40)])
    v = judge(samples, rate=100, duration_s=20, drained_s=2.0, grace_s=3)
    assert not v.sustainable and v.slope == pytest.approx(10, rel=0.01)
    assert "grew 10.0 msg/s" in v.reason


def test_growth_in_the_first_half_only_is_warm_up_not_overload() -> None:
    samples = series([i * 10 for i in range(20)] + [190] * 20)
    assert judge(samples, rate=100, duration_s=20, drained_s=1.0, grace_s=3).sustainable


def test_a_flat_backlog_that_does_not_drain_in_time_is_not_sustainable() -> None:
    samples = series([50] * 40)
    late = judge(samples, rate=100, duration_s=20, drained_s=8.0, grace_s=3)
    never = judge(samples, rate=100, duration_s=20, drained_s=None, grace_s=3)
    assert not late.sustainable and "drained in 8.0 s" in late.reason
    assert not never.sustainable and "never drained" in never.reason


def test_slow_rates_allow_at_least_one_message_a_second_of_noise() -> None:
    # at 10 msg/s, 5% would be 0.5 msg/s: the floor is 1 msg/s
    samples = series([0, 1, 0, 1, 2, 1, 2, 1, 2, 3] * 4)
    v = judge(samples, rate=10, duration_s=20, drained_s=0.5, grace_s=3)
    assert v.limit == 1.0 and v.sustainable


def test_a_short_step_with_a_small_backlog_is_batching_noise_not_overload() -> None:
    # 3 s at 40 msg/s: the backlog climbs to 36 (under one second of load), then drains
    samples = series([0, 12, 12, 23, 33, 36])
    v = judge(samples, rate=40, duration_s=3, drained_s=0.6, grace_s=3)
    assert v.slope > v.limit and v.sustainable


def test_slope_and_drain_rate() -> None:
    assert slope([(0, 0), (1, 2), (2, 4)]) == pytest.approx(2)
    assert slope([(1, 5)]) == 0.0
    samples = [Sample(t=t, done=int(100 * t), backlog=0) for t in (0.5, 1, 2, 3, 4, 5)]
    assert drain_rate(samples, 500) == pytest.approx(100)


def test_variants_parse_into_worker_settings() -> None:
    fixed = variant("fixed-32x20ms")
    assert fixed.kind == "ours" and fixed.env == {
        "STREAMER_BATCH_MODE": "fixed", "STREAMER_BATCH_MAX_SIZE": "32",
        "STREAMER_BATCH_MAX_WAIT_S": "0.02"}
    adaptive = variant("adaptive", 80)
    assert adaptive.env == {"STREAMER_BATCH_MODE": "adaptive",
                            "STREAMER_LATENCY_TARGET_MS": "80"}
    assert variant("naive").kind == "naive"
    with pytest.raises(BenchError, match="unknown variant"):
        variant("fixed-32")


def e2e(p99: float) -> StageLatency:
    return StageLatency(stage="end_to_end", count=100, mean_ms=p99 / 3, p50_ms=p99 / 4,
                        p90_ms=p99 / 2, p99_ms=p99, p999_ms=p99 * 1.2, max_ms=p99 * 1.5)


def ramp(name: str, kind: str, rate: float, ok: bool) -> Run:
    verdict = Verdict(sustainable=ok, slope=0.0 if ok else rate * 0.1, limit=max(1, rate / 20),
                      drained_s=0.5 if ok else None, reason="test")
    return Run(variant=name, kind=kind, phase="ramp", offered_rate=rate, duration_s=30,  # type: ignore[arg-type]
               sent=int(rate * 30), completed=int(rate * 30),
               completed_rate=rate * (0.99 if ok else 0.9), verdict=verdict,
               e2e=e2e(100 if ok else 5000))


def lat(name: str, kind: str, load: str, rate: float, p99: float, ok: bool = True) -> Run:
    r = ramp(name, kind, rate, ok).model_copy(update={"phase": "latency", "load": load,
                                                      "e2e": e2e(p99)})
    if kind == "ours":
        r.stages = [StageLatency(stage="infer", count=100, mean_ms=5, p50_ms=4, p90_ms=8,
                                 p99_ms=12, p999_ms=15, max_ms=20, share_mean=0.4)]
    return r


@pytest.fixture
def bench() -> PipelineBench:
    variants = [VariantResult(name="naive", kind="naive", label="transformers"),
                VariantResult(name="adaptive", kind="ours", label="adaptive"),
                VariantResult(name="fixed-8x5ms", kind="ours", label="small"),
                VariantResult(name="fixed-64x50ms", kind="ours", label="big")]
    runs = [ramp("naive", "naive", 20, True), ramp("naive", "naive", 30, True),
            ramp("naive", "naive", 40, False),
            ramp("adaptive", "ours", 250, True), ramp("adaptive", "ours", 330, True),
            ramp("adaptive", "ours", 400, False),
            ramp("fixed-8x5ms", "ours", 150, True), ramp("fixed-8x5ms", "ours", 200, False),
            ramp("fixed-64x50ms", "ours", 300, True), ramp("fixed-64x50ms", "ours", 380, False),
            lat("naive", "naive", "low", 15, 300),
            lat("adaptive", "ours", "low", 15, 60), lat("adaptive", "ours", "high", 247.5, 200),
            lat("fixed-8x5ms", "ours", "low", 15, 40),
            lat("fixed-8x5ms", "ours", "high", 247.5, 9000, ok=False),
            lat("fixed-64x50ms", "ours", "low", 15, 150),
            lat("fixed-64x50ms", "ours", "high", 247.5, 250)]
    for v in variants:
        best = capacity(runs, v.name)
        assert best is not None
        v.capacity, v.capacity_completed = best.offered_rate, best.completed_rate
    b = PipelineBench(command="streamer bench pipeline --quick", date="2026-11-24 10:00 UTC",
                      machine=machine_info(), cpu="Test CPU", plan=Plan(variants=[
                          v.name for v in variants]),
                      naive_model="the bundle's teacher", ours_scorer="scorer onnx",
                      load_generator="librdkafka 9.9.9 (test)",
                      variants=variants, runs=runs, low_rate=15, high_rate=247.5)
    b.targets = targets(b.runs, b.variants, b.low_rate)
    return b


def test_refinement_bisects_between_the_best_step_and_the_lowest_failure_above_it() -> None:
    runs = [ramp("a", "ours", 100, True), ramp("a", "ours", 115, True),
            ramp("a", "ours", 132.25, False), ramp("a", "ours", 200, False),
            ramp("b", "ours", 120, True)]
    assert refine_rate(runs, "a") == pytest.approx((115 * 132.25) ** 0.5)
    # a refined step that holds becomes the capacity, and the next bisects above it
    runs.append(ramp("a", "ours", 123.3, True))
    assert capacity(runs, "a").offered_rate == 123.3  # type: ignore[union-attr]
    assert refine_rate(runs, "a") == pytest.approx((123.3 * 132.25) ** 0.5)


def test_no_refinement_without_a_failure_above_the_best_step() -> None:
    assert refine_rate([ramp("a", "ours", 100, True)], "a") is None
    assert refine_rate([ramp("a", "ours", 100, False)], "a") is None


def test_targets_compare_capacities_p99_and_adaptive_against_the_best_fixed(
    bench: PipelineBench,
) -> None:
    t = bench.targets
    assert t is not None
    assert t.naive_capacity == pytest.approx(29.7) and t.ours_capacity == pytest.approx(326.7)
    assert t.throughput_ratio == pytest.approx(11.0) and t.throughput_met
    assert t.p99_ratio == pytest.approx(0.2) and t.p99_met
    low, high = t.adaptive_vs_fixed
    # low load: fixed-8 has the lowest p99 (40 ms); adaptive's 60 ms is worse
    assert (low.best_fixed, low.ratio, low.verdict) == ("fixed-8x5ms", 1.5, "worse")
    # high load: fixed-8 is not sustainable there; the best sustainable fixed is fixed-64
    assert (high.best_fixed, high.ratio, high.verdict) == ("fixed-64x50ms", 0.8, "beats")
    assert t.adaptive_capacity_vs_best_fixed == pytest.approx(326.7 / 297, rel=1e-3)


def test_a_ratio_within_ten_percent_matches() -> None:
    runs = [lat("adaptive", "ours", "low", 10, 105), lat("fixed-8x5ms", "ours", "low", 10, 100)]
    variants = [VariantResult(name="adaptive", kind="ours", label=""),
                VariantResult(name="fixed-8x5ms", kind="ours", label="")]
    assert compare(runs, variants, "low").verdict == "matches"
    assert compare(runs, variants, "high").verdict == "not measured"


def rounds(name: str, load: str, p99s: list[float], rate: float = 10) -> list[Run]:
    runs = [lat(name, "ours", load, rate, p99) for p99 in p99s]
    for k, r in enumerate(runs):
        r.round = k
    return runs


def test_with_rounds_each_variant_s_median_round_is_compared() -> None:
    # one bad round of adaptive (900 ms) and one of fixed (20 ms) decide nothing
    runs = rounds("adaptive", "high", [100, 900, 110]) + rounds("fixed-8x5ms", "high",
                                                                 [120, 130, 20])
    variants = [VariantResult(name="adaptive", kind="ours", label=""),
                VariantResult(name="fixed-8x5ms", kind="ours", label="")]
    c = compare(runs, variants, "high")
    assert (c.adaptive_p99_ms, c.best_fixed_p99_ms, c.verdict) == (110, 120, "beats")
    # round by round: 100 < 120, 900 > 130, 110 > 20
    assert (c.rounds, c.rounds_lower) == (3, 1)


def test_of_an_even_number_of_rounds_the_lower_middle_one_is_the_median() -> None:
    runs = rounds("adaptive", "low", [40, 10, 30, 20])
    assert latency_run(runs, "adaptive", "low").p99_ms == 20  # type: ignore[union-attr]


def test_the_report_numbers_the_rounds_and_says_which_median_decided(
    bench: PipelineBench,
) -> None:
    extra = rounds("adaptive", "high", [150, 400], rate=247.5)
    for k, r in enumerate(extra, start=1):
        r.round = k
    b = bench.model_copy(update={"runs": [*bench.runs, *extra],
                                 "plan": bench.plan.model_copy(update={"rounds": 3})})
    b.targets = targets(b.runs, b.variants, b.low_rate)
    md = markdown(b)
    assert "| adaptive | high #1 |" in md and "| adaptive | high #3 |" in md
    assert "3 rounds at each load" in md
    # adaptive's high rounds: 200, 150, 400 -> median 200; fixed-64 ran one round (250)
    high = b.targets.adaptive_vs_fixed[1]
    assert (high.adaptive_p99_ms, high.rounds, high.rounds_lower) == (200, 3, 1)
    assert "medians of 3 rounds; adaptive lower in 1 of them" in md


def test_the_report_and_the_docs_section(bench: PipelineBench, tmp_path: Path) -> None:
    md = markdown(bench)
    assert "**11.0x**" in md and "| >= 8x | **met** |" in md
    assert "| naive | low | 15.0 | 14.8 | yes | 75.0 | 150 | 300 | 360 | 450 |" in md
    assert "| adaptive | high |" in md and "12.0 (40%)" in md  # per-stage p99 and share
    assert "| fixed-8x5ms | ramp | 200.0 |" in md and "**beats**" in md
    assert f"Load generator: {bench.load_generator}, open loop" in md
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nIntro.\n\n## 2026-11-23 — older\n\nOld figures.\n")
    update_doc(doc, docs_section(bench, tmp_path / "out"))
    first = doc.read_text()
    assert first.index(DOC_START) < first.index("## 2026-11-23 — older")
    assert "## 2026-11-24 — end-to-end pipeline" in first and "Machine: Test CPU" in first
    assert "Command: `streamer bench pipeline --quick`" in first
    again = bench.model_copy(update={"date": "2026-11-25 09:00 UTC"})
    update_doc(doc, docs_section(again, tmp_path / "out"))
    second = doc.read_text()
    assert second.count(DOC_START) == 1 and "2026-11-25" in second
    assert "2026-11-24 — end-to-end" not in second and "Old figures." in second
    assert "\n\n\n" not in second


def test_the_report_shows_the_turns_and_what_the_waiting_workers_used(
    bench: PipelineBench,
) -> None:
    for i, r in enumerate(bench.runs):
        r.at_s, r.others_cpu_pct = 30.0 * i, float(i % 5)
    md = markdown(bench)
    assert "the variants take turns, one step each" in md
    # 17 steps: the median step's waiting workers used 2% of a core, the busiest 4%
    assert "the waiting workers used 2.0% of a core (median step; max 4.0%)" in md
    assert "| 3.5 | fixed-8x5ms | ramp | 200.0 |" in md  # step 7 began 210 s in
    assert "Warm-up: the Kafka hop alone at 500 msg/s for 30 s before the first step" in md


def test_the_waiting_workers_cpu_is_unknown_rather_than_zero_when_not_measured(
    bench: PipelineBench,
) -> None:
    assert "the waiting workers' CPU was not measured" in markdown(bench)


def test_a_process_group_s_cpu_includes_its_children() -> None:
    import subprocess
    import sys
    import time

    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    # the shell only waits: the CPU is its child's, in the same process group
    proc = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "{spin}"; sleep 30'],
                            start_new_session=True)
    try:
        before = group_cpu_s({proc.pid})
        assert before is not None
        deadline = time.monotonic() + 20
        while (group_cpu_s({proc.pid}) or 0.0) - before < 0.3:
            assert time.monotonic() < deadline, "the child's CPU never showed"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


def test_results_round_trip_and_plots_are_written(bench: PipelineBench, tmp_path: Path) -> None:
    paths = write(bench, tmp_path)
    names = {p.name for p in paths}
    assert {"results.json", "report.md", "latency_vs_load.png", "throughput_ramp.png"} <= names
    assert PipelineBench.model_validate_json((tmp_path / "results.json").read_text()) == bench
    assert all(p.stat().st_size > 1000 for p in paths if p.suffix == ".png")


def test_without_a_running_stack_it_says_to_start_one(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from servers import free_ports

    kafka, redis = free_ports(2)  # nothing listens there
    env = {**os.environ, "KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}",
           "REDIS_URL": f"redis://127.0.0.1:{redis}/0", "STREAMER_REDIS_RETRY_ATTEMPTS": "1"}
    proc = subprocess.run([sys.executable, "-m", "streamer.cli.main", "bench", "pipeline",
                           "--quick", "--no-docs", "--out", str(tmp_path / "out")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "streamer stack up" in proc.stderr and "did not answer" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_report_sets_the_kafka_hop_alone_beside_the_targets(bench: PipelineBench) -> None:
    bench.kafka_hop = StageLatency(stage="kafka hop", count=300, mean_ms=2.1, p50_ms=2.0,
                                   p90_ms=2.6, p99_ms=5.5, p999_ms=7.0, max_ms=8.0)
    md = markdown(bench)
    assert "| the Kafka hop alone at 15.0 msg/s (no pipeline), p50 / p99 | 2.0 / 5.5 ms |" in md


async def test_the_kafka_hop_counts_every_record_sent(kafka_bootstrap: str) -> None:
    settings = Settings(_env_file=None, kafka_bootstrap=kafka_bootstrap)
    hop = await kafka_hop(settings, [b"x%d" % i for i in range(40)], rate=200.0)
    assert hop is not None
    assert hop.count == 40
    # from the intended send time: never negative, and well under the 30 s it may wait
    assert 0 < hop.p50_ms <= hop.p99_ms <= hop.max_ms < 30_000


def test_the_targets_and_the_report_set_ours_against_the_quix_peer(
    bench: PipelineBench,
) -> None:
    quix = VariantResult(name="quix", kind="peer", label="Quix Streams")
    runs = [ramp("quix", "peer", 100, True), ramp("quix", "peer", 150, False),
            lat("quix", "peer", "low", 15, 80), lat("quix", "peer", "high", 247.5, 9000, ok=False)]
    quix.capacity, quix.capacity_completed = 100, 99
    b = bench.model_copy(update={"variants": [*bench.variants, quix],
                                 "runs": [*bench.runs, *runs],
                                 "peer": "Quix Streams 3.28.1, bundle b"})
    b.targets = targets(b.runs, b.variants, b.low_rate)
    t = b.targets
    # adaptive: 326.7 msg/s, p99 60 ms low and 200 ms high; the peer: 99, 80 and 9000
    assert t.peer == "quix" and t.peer_throughput_ratio == pytest.approx(3.3)
    assert t.peer_throughput_met and t.peer_p99_met
    assert (t.peer_p99_ms, t.peer_p99_ratio, t.peer_high_p99_ms) == (80, 0.75, 9000)
    md = markdown(b)
    assert "| end-to-end throughput, ours (adaptive) / peer (quix) | 327 / 99 msg/s = **3.3x** " \
           "| >= 2x | **met** |" in md
    assert "60.0 / 80.0 ms = **0.75**; 200 / 9,000 ms" in md
    assert "Peer pipeline: Quix Streams 3.28.1, bundle b; Application" in md
    assert "| quix | high | 247.5 |" in md  # the peer runs the same fixed loads as ours
    # without a peer, no peer rows
    assert "/ peer (" not in markdown(bench) and bench.targets is not None
    assert bench.targets.peer is None
