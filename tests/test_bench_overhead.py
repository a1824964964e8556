"""`streamer bench pipeline` against the model alone (issue 32): the bare model stage, the
worker's batch sizes per step, and the CPU profile of a loaded worker.

The pure parts on made-up figures; then, against the test Kafka and Redis and the tiny
bundle, the bare model's own process, a worker's batches counted per step from its
/metrics, and a worker profiled by py-spy (the dev extra) for one step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from servers import unavailable

from streamer.bench.pipeline.bare import Batch, batches_of, run_bare
from streamer.bench.pipeline.messages import Messages
from streamer.bench.pipeline.profile import category, pyspy, summarise
from streamer.bench.pipeline.report import docs_section, markdown
from streamer.bench.pipeline.results import (
    BareCell,
    BareReport,
    PipelineBench,
    Plan,
    Run,
    VariantResult,
)
from streamer.bench.pipeline.variants import variant
from streamer.bench.pipeline.verdicts import bare_rows, bare_sizes, bare_targets
from streamer.settings import Settings
from streamer.training.card import machine_info


def step(name: str, rate: float, ok: bool, batch_mean: float | None) -> Run:
    from streamer.bench.pipeline.results import Verdict

    return Run(variant=name, kind="ours", phase="ramp", offered_rate=rate, duration_s=30,
               sent=int(rate * 30), completed=int(rate * 30), completed_rate=rate * 0.99,
               verdict=Verdict(sustainable=ok, slope=0, limit=1, drained_s=0.5 if ok else None,
                               reason="test"),
               batches=100 if batch_mean else None, batch_mean=batch_mean)


def cell(size: int, rate: float, round_: int = 0) -> BareCell:
    return BareCell(size=size, round=round_, messages=int(rate * 10), seconds=10,
                    msgs_per_s=rate, tokens_per_msg=20, tokenize_share=0.1)


@pytest.fixture
def measured() -> tuple[list[Run], list[VariantResult], BareReport]:
    adaptive = variant("adaptive")
    fixed = variant("fixed-32x20ms")
    variants = [VariantResult(name="naive", kind="naive", label="naive"),
                VariantResult(name="adaptive", kind="ours", label="a", env=adaptive.env),
                VariantResult(name="fixed-32x20ms", kind="ours", label="f", env=fixed.env)]
    runs = [step("adaptive", 300, True, 12.0), step("adaptive", 400, True, 17.6),
            step("adaptive", 460, False, 40.0),
            step("fixed-32x20ms", 350, True, 29.5), step("fixed-32x20ms", 420, False, 32.0)]
    variants[1].capacity_completed, variants[2].capacity_completed = 396.0, 346.5
    report = BareReport(scorer="onnx-cpu:student2-int8", model="m", threads=2, queue_depth=2,
                        ort_intra_op_threads=1, texts=1000,
                        cells=[cell(18, 600), cell(18, 500, 1), cell(18, 900, 2),
                               cell(32, 700)])
    return runs, variants, report


def test_the_bare_model_runs_at_adaptive_s_mean_batch_at_capacity_and_fixed_s_size(
    measured: tuple[list[Run], list[VariantResult], BareReport],
) -> None:
    runs, variants, _ = measured
    # adaptive: its highest sustainable step wrote batches of 17.6 on average
    assert bare_sizes(runs, variants) == [
        ("adaptive", 18, "its mean batch at capacity", 17.6),
        ("fixed-32x20ms", 32, "its fixed size", 29.5)]


def test_end_to_end_over_bare_compares_the_median_round_and_meets_at_sixty_percent(
    measured: tuple[list[Run], list[VariantResult], BareReport],
) -> None:
    runs, variants, report = measured
    rows = bare_rows(runs, variants, report)
    assert [(r.variant, r.bare_msgs_per_s, r.ratio) for r in rows] == [
        ("adaptive", 600, 0.66), ("fixed-32x20ms", 700, 0.495)]
    assert bare_targets(rows) == {"bare_variant": "adaptive", "bare_ratio": 0.66,
                                  "bare_met": True}
    report.cells[0] = cell(18, 800)  # median now 800: 396 / 800 is under 60%
    assert bare_targets(bare_rows(runs, variants, report))["bare_met"] is False


def test_an_adaptive_worker_that_reported_no_batches_gets_no_bare_row(
    measured: tuple[list[Run], list[VariantResult], BareReport],
) -> None:
    runs, variants, _ = measured
    blind = [r.model_copy(update={"batches": None, "batch_mean": None}) for r in runs]
    assert [name for name, *_ in bare_sizes(blind, variants)] == ["fixed-32x20ms"]


def test_bare_batches_hold_one_input_topic_each_in_arrival_order() -> None:
    items = [("n1", "news"), ("c1", "chat"), ("c2", "chat"), ("c3", "chat"), ("n2", "news"),
             ("c4", "chat")]
    got = batches_of(items, 2)  # type: ignore[arg-type]
    assert got == [Batch(["n1", "n2"], ["news", "news"]), Batch(["c1", "c2"], ["chat", "chat"]),
                   Batch(["c3", "c4"], ["chat", "chat"])]


RAW = [
    "process 10:\"python -m streamer.cli.main worker\";thread (11): score_0;"
    "Thread.run (threading.py:982);OnnxScorer.score (streamer/score/onnx_scorer.py:160);"
    "InferenceSession.run (onnxruntime/capi/onnxruntime_inference_collection.py:220) 60",
    "process 10:\"python\";thread (12): score_1;Thread.run (threading.py:982);"
    "OnnxScorer.score (streamer/score/onnx_scorer.py:150);"
    "SourceTokenizers.encode (streamer/bundle/tokenize.py:60) 10",
    "process 10:\"python\";thread (13): MainThread;_run_once (asyncio/base_events.py:1922);"
    "BatchProcessor.score (streamer/batch/processor.py:110);"
    "decode (streamer/ingest/decode.py:104);"
    "BaseModel.model_validate (pydantic/main.py:596) 20",
    "process 10:\"python\";thread (13): MainThread;_run_once (asyncio/base_events.py:1922);"
    "BatchProcessor.score (streamer/batch/processor.py:110);"
    "decode (streamer/ingest/decode.py:104) 6",
    "process 10:\"python\";thread (13): MainThread;_run_once (asyncio/base_events.py:1922);"
    "Handle._run (asyncio/events.py:80);Fetcher._fetch (aiokafka/consumer/fetcher.py:400);"
    "_SelectorSocketTransport.write (asyncio/selector_events.py:1) 4",
    # caught waiting: the loop in epoll, an idle scoring thread on its queue
    "process 10:\"python\";thread (13): MainThread;_run_once (asyncio/base_events.py:1884);"
    "EpollSelector.select (selectors.py:468) 5",
    "process 10:\"python\";thread (11): score_0;Thread.run (threading.py:982);"
    "_worker (concurrent/futures/thread.py:81) 2",
]


def test_profile_samples_count_under_their_innermost_named_frame() -> None:
    total, waiting, cats, threads, top = summarise(RAW)
    assert (total, waiting) == (100, 7)
    assert {c.name: c.share for c in cats} == {"onnx run": 0.6, "pydantic": 0.2,
                                               "tokenize": 0.1, "json decode": 0.06,
                                               "aiokafka": 0.04}
    assert {t.name: t.samples for t in threads} == {"score_*": 70, "MainThread": 30}
    assert top[0].name == "InferenceSession.run (capi/onnxruntime_inference_collection.py)"
    assert category([("f", "somewhere/else.py")]) == "other"
    # the loop's own plumbing, with nothing specific under its dispatch
    assert category([("BaseEventLoop._run_once", "asyncio/base_events.py"),
                     ("Handle._run", "asyncio/events.py")]) == "event loop (asyncio)"


def test_the_report_shows_the_bare_rows_and_where_the_time_goes(
    measured: tuple[list[Run], list[VariantResult], BareReport],
) -> None:
    from streamer.bench.pipeline.results import CpuProfile, ProfileRow
    from streamer.bench.pipeline.verdicts import targets
    from streamer.latency.report import StageLatency

    runs, variants, report = measured
    rows = bare_rows(runs, variants, report)
    _, _, cats, threads, top = summarise(RAW)
    infer = StageLatency(stage="infer", count=100, mean_ms=5, p50_ms=4, p90_ms=8, p99_ms=12,
                         p999_ms=15, max_ms=20, share_mean=0.4)
    b = PipelineBench(command="streamer bench pipeline --quick", date="2026-12-08 10:00 UTC",
                      machine=machine_info(), cpu="Test CPU", plan=Plan(variants=["naive"]),
                      naive_model="n", ours_scorer="s", variants=variants, runs=runs,
                      bare_model=report, bare=rows,
                      profile=CpuProfile(tool="py-spy 0.4.3", variant="adaptive",
                                         offered_rate=356.4, completed_rate=350.0, seconds=8,
                                         samples=100, messages=50, categories=cats,
                                         threads=threads,
                                         top=top, stages=[infer], raw="profile-adaptive.txt"))
    b.targets = targets(runs, variants, None).model_copy(update=bare_targets(rows))
    md = markdown(b)
    assert ("| end-to-end throughput / the bare model's (tokenize + infer alone, batch 18), "
            "ours (adaptive) | 396 / 600 msg/s = **0.66** | >= 0.6 | **met** |") in md
    assert "| bare model, batch 32 | tokenize + infer alone (onnx-cpu:student2-int8)" in md
    assert ("| adaptive | 18 | its mean batch at capacity | 17.6 | 600.0 | 20.0 | 10% | "
            "396.0 | 0.66 |") in md
    assert "| infer | 5.0 | 4.0 | 12.0 | 40% |" in md
    # 60 samples at 100 Hz over 50 messages: 12 ms of a thread's time per message
    assert "| onnx run | 60 | 60.0% | 12,000 |" in md
    assert "| MainThread | 30 | 30.0% | 6,000 |" in md
    assert isinstance(cats[0], ProfileRow)
    assert "| onnx run | 60 | 60.0% |" in docs_section(b, Path("bench-out/x"))


def test_a_run_pins_the_bundle_it_starts_with(tiny_bundle: Path, tmp_path: Path) -> None:
    import shutil

    from streamer.bench.pipeline.preflight import bundle_env, pin_bundle

    settings = Settings(_env_file=None, cache_dir=str(tmp_path / "cache"))
    assert pin_bundle(settings) == settings  # nothing built yet: nothing to pin
    shutil.copytree(tiny_bundle, settings.paths.bundles / "default")
    pinned = pin_bundle(settings)
    # a full build that completes later would not move the workers started after it
    assert pinned.scoring.bundle_dir == settings.paths.bundles / "default"
    assert bundle_env(pinned) == {"STREAMER_BUNDLE_DIR": str(settings.paths.bundles / "default")}
    assert bundle_env(settings) == {}


async def test_the_bare_model_scores_the_load_generator_s_texts_at_each_size(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMER_BUNDLE_DIR", str(tiny_bundle))
    monkeypatch.setenv("STREAMER_SCORER", "onnx")
    base = Settings(_env_file=None, data_dir=str(tmp_path / "data"))
    plan = Plan(variants=["naive"], bare_s=1.0, bare_messages=200, rounds=2)
    report = await run_bare(base, plan, [4, 16], tmp_path)
    assert report.scorer.startswith("onnx-cpu:") and report.threads == 2
    assert 150 <= report.texts <= 200  # the generator's valid messages
    assert sorted((c.size, c.round) for c in report.cells) == [(4, 0), (4, 1), (16, 0),
                                                               (16, 1)]
    for c in report.cells:
        assert c.messages > 0 and c.msgs_per_s > 0 and c.tokens_per_msg > 2
        assert 0 < c.tokenize_share < 1


@pytest.mark.slow
async def test_a_step_counts_the_batches_the_worker_wrote_and_a_profile_says_where_cpu_went(
    kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamer.bench.pipeline.hold import hold
    from streamer.bench.pipeline.processes import Session
    from streamer.bench.pipeline.profile import profile_step
    from streamer.bench.pipeline.turns import Runner

    if pyspy() is None:
        unavailable("py-spy is not installed (the dev extra)")
    monkeypatch.setenv("STREAMER_BUNDLE_DIR", str(tiny_bundle))
    monkeypatch.setenv("STREAMER_SCORER", "onnx")
    base = Settings(_env_file=None, KAFKA_BOOTSTRAP=kafka_bootstrap, REDIS_URL=redis_url,
                    data_dir=str(tmp_path / "data"))
    plan = Plan(variants=["fixed-8x20ms"], step_s=3.0)
    said: list[str] = []
    session = Session(base, variant("fixed-8x20ms"), plan, tmp_path / "logs", None,
                      said.append)
    runner = Runner(base, plan, tmp_path, None, said.append, said.append)
    await session.start()
    try:
        run = await hold(session, Messages(3), rate=40.0, n=80, phase="latency", load="low")
        assert run.completed == 80, session.tail()
        # every message in a batch of at most 8, counted from the worker's /metrics
        assert run.batches is not None and 10 <= run.batches <= 80
        assert run.batch_mean is not None and 1 <= run.batch_mean <= 8
        assert run.batch_mean == pytest.approx(80 / run.batches, abs=0.01)

        prof = await profile_step(runner, session, Messages(5), 60.0, tmp_path / "out")
        assert prof is not None, said
        assert (tmp_path / "out" / prof.raw).is_file() and prof.samples > 0
        assert prof.completed_rate > 0 and {st.stage for st in prof.stages} >= {"infer"}
        assert sum(c.samples for c in prof.categories) == prof.samples
        # the worker's own code shows up, by name: the event loop and the scoring threads
        names = {c.name for c in prof.categories}
        assert names & {"onnx run", "tokenize", "pydantic", "json decode", "faust overhead",
                        "aiokafka", "event loop (asyncio)"}, prof.categories
    finally:
        await session.stop()
