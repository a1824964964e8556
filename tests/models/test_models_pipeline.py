"""The tiny bundle, end to end: every build step ran for real and the result serves."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from rich.console import Console
from tiny_bundle import TinyBuild

from streamer.bundle.load import load_bundle
from streamer.bundle.tokenize import SourceTokenizers
from streamer.score.base import Scorer
from streamer.score.onnx_scorer import OnnxScorer
from streamer.training.build import COMPLETE, build_bundle, profile_config
from streamer.training.card import CARD_JSON, CARD_MD, ModelCard
from streamer.training.progress import Reporter

CHAT = ["$TSLA to the moon!!", "ugh, $AAPL guidance is a disaster", "ok"]
NEWS = [
    "Oil prices rose on Tuesday after OPEC agreed to extend output cuts. " * 6,
    "XYZ Corp said it agreed to acquire ABC Inc for 1.2 billion dollars in cash.",
    "The central bank left its benchmark interest rate unchanged.",
]


def test_tiny_build_is_complete(tiny_build: TinyBuild) -> None:
    bundle = load_bundle(tiny_build.path)  # every sha256 checked
    m = bundle.manifest
    assert (tiny_build.path / COMPLETE).is_file()
    assert {v.name for v in m.variants} == {
        "teacher-fp32", "teacher-int8", "student2-int8", "student2-fp16",
    }
    # Label sets and their order come from the data: the topic head has the 20 TFN
    # topics (the R8 stories mapped onto them), whatever rows the tiny cut kept.
    assert m.head("sentiment").labels == ["negative", "neutral", "positive"]
    assert len(m.head("topic").labels) == 20 and "Fed | Central Banks" in m.head("topic").labels
    mapping = {d.name: d.label_mapping for d in m.datasets}
    assert mapping["tfn-sentiment"] == {"negative": "negative", "neutral": "neutral",
                                        "positive": "positive"}
    assert m.max_length == {"chat": 32, "news": 48}
    assert m.pooling == "mean"
    assert m.build.seed == 13 and m.build.epochs == {"teacher": 1.0, "student2": 1.0}
    assert {"torch", "onnxruntime", "transformers"} <= set(m.build.versions)
    assert m.build.command == "pytest tiny"


def test_student_keeps_teacher_layers_and_is_small(tiny_bundle: Path) -> None:
    m = load_bundle(tiny_bundle, verify=()).manifest
    teacher, student = m.variant("teacher-fp32"), m.variant("student2-int8")
    assert teacher.layers == 6 and student.layers == 2
    assert student.layers_from_base == [0, 5]  # first and last block of the teacher
    assert student.size_bytes * 4 <= teacher.size_bytes
    assert m.variant("teacher-int8").size_bytes * 3 < teacher.size_bytes


def test_every_variant_was_verified_against_pytorch(tiny_bundle: Path) -> None:
    for v in load_bundle(tiny_bundle, verify=()).manifest.variants:
        assert v.verify is not None and v.verify.passed, v.name
        if v.verify.skipped is None:
            assert v.verify.n == 32
            assert set(v.verify.argmax_agreement) == {"sentiment", "topic"}
    fp32 = load_bundle(tiny_bundle, verify=()).manifest.variant("teacher-fp32").verify
    assert fp32 is not None and max(fp32.max_prob_diff.values()) < 1e-3


def test_onnx_graphs_are_fused_quantized_and_dynamic(tiny_bundle: Path) -> None:
    def op_types(name: str) -> set[str]:
        return {n.op_type for n in onnx.load(str(tiny_bundle / name)).graph.node}

    fp32 = op_types("teacher-fp32.onnx")
    assert {"Attention", "SkipLayerNormalization", "BiasGelu"} <= fp32
    assert "EmbedLayerNormalization" in fp32
    int8 = op_types("student2-int8.onnx")
    assert int8 & {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}
    fp16_model = onnx.load(str(tiny_bundle / "student2-fp16.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16_model.graph.initializer)
    graph = onnx.load(str(tiny_bundle / "teacher-fp32.onnx")).graph
    for inp in graph.input:
        dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
        assert dims == ["batch", "sequence"], inp.name
    assert [o.name for o in graph.output] == ["sentiment_probs", "topic_probs"]


def test_card_has_measured_figures(tiny_bundle: Path) -> None:
    card = ModelCard.model_validate_json((tiny_bundle / CARD_JSON).read_text())
    by_name = {v.name: v for v in card.variants}
    student = by_name["student2-int8"]
    assert student.speed is not None and student.speed.batch32_msgs_per_s > 0
    assert student.speed.batch1_msgs_per_s > 0
    assert set(student.heads) == {"sentiment", "topic"}
    # Each sentiment dataset is also scored on its own.
    assert {"tfn-sentiment", "phrasebank", "reuters-topics"} <= set(student.datasets)
    for v in card.variants:
        assert 0 <= v.heads["sentiment"].accuracy <= 1 and v.size_bytes > 0
    md = (tiny_bundle / CARD_MD).read_text()
    assert "student2-int8" in md and "msg/s b32" in md and "macro-F1" in md


def test_onnx_scorer_follows_the_protocol(tiny_bundle: Path) -> None:
    scorer = OnnxScorer(tiny_bundle)
    assert isinstance(scorer, Scorer)
    assert scorer.name.startswith("onnx-cpu:")
    assert scorer.sentiment_labels == ("negative", "neutral", "positive")
    scorer.warmup()
    out = scorer.score([], [])
    assert out.sentiment.shape == (0, 3) and out.topic.shape == (0, 20)  # the TFN topics


def test_scores_come_back_in_input_order(tiny_bundle: Path) -> None:
    scorer = OnnxScorer(tiny_bundle, variant="teacher-fp32")
    texts = [*NEWS, *CHAT]
    sources = ["news"] * len(NEWS) + ["chat"] * len(CHAT)
    batch = scorer.score(texts, sources)  # type: ignore[arg-type]
    assert batch.tokenize_s >= 0 and batch.infer_s > 0
    for i, (text, source) in enumerate(zip(texts, sources, strict=True)):
        one = scorer.score([text], [source])  # type: ignore[list-item]
        np.testing.assert_allclose(batch.sentiment[i], one.sentiment[0], atol=1e-5)
        np.testing.assert_allclose(batch.topic[i], one.topic[0], atol=1e-5)
    np.testing.assert_allclose(batch.sentiment.sum(axis=1), 1.0, atol=1e-5)


def test_onnx_scorer_matches_pytorch(tiny_bundle: Path) -> None:
    import torch

    from streamer.bundle.tokenize import SourceTokenizers
    from streamer.network.heads import load_model

    model, _ = load_model(tiny_bundle / "_work" / "models" / "student2")
    manifest = load_bundle(tiny_bundle, verify=()).manifest
    toks = SourceTokenizers(tiny_bundle / "tokenizer.json", manifest.max_length)
    scorer = OnnxScorer(tiny_bundle, variant="student2-fp16")
    texts = [*CHAT, *NEWS]
    sources = ["chat"] * len(CHAT) + ["news"] * len(NEWS)
    got = scorer.score(texts, sources)  # type: ignore[arg-type]
    for i, ids in enumerate(toks.encode(texts, sources)):
        x = torch.tensor([ids])
        with torch.no_grad():
            logits = model(x, torch.ones_like(x))
        np.testing.assert_allclose(
            torch.softmax(logits["sentiment"], -1)[0].numpy(), got.sentiment[i], atol=2e-3
        )
        np.testing.assert_allclose(
            torch.softmax(logits["topic"], -1)[0].numpy(), got.topic[i], atol=2e-3
        )


LONG_TEXT = "shares of the company rose sharply in early trading " * 40
SHORT_CHAT = ["$A up", "$B down", "$C flat"]


def test_truncation_per_source(tiny_bundle: Path) -> None:
    scorer = OnnxScorer(tiny_bundle, variant="student2-int8")
    as_chat = scorer.score([LONG_TEXT], ["chat"])
    as_news = scorer.score([LONG_TEXT], ["news"])
    assert as_chat.extra["tokens"] == 32 and as_news.extra["tokens"] == 48


def test_rows_are_grouped_by_length_and_padded_to_their_groups_longest(tiny_bundle: Path
                                                                       ) -> None:
    # Shared calls (INT8 scores each text alone by default; see the test after next).
    scorer = OnnxScorer(tiny_bundle, variant="student2-int8", int8_rows_alone=False)
    manifest = load_bundle(tiny_bundle, verify=()).manifest
    tokenizers = SourceTokenizers(tiny_bundle / "tokenizer.json", manifest.max_length)
    longest_chat = max(len(ids) for ids in tokenizers.encode(SHORT_CHAT, ["chat"] * 3))
    assert longest_chat < 16
    # One long news item among short chat lines: the chat rows pad to their own longest
    # row, neither to the news item's 48 nor (on CPU) up to the 16 bucket.
    batch = scorer.score([*SHORT_CHAT, LONG_TEXT], ["chat", "chat", "chat", "news"])
    assert batch.extra["padded_tokens"] == 3 * longest_chat + 48
    bucketed = OnnxScorer(tiny_bundle, variant="student2-int8", pad_to_bucket=True,
                          int8_rows_alone=False)
    again = bucketed.score([*SHORT_CHAT, LONG_TEXT], ["chat", "chat", "chat", "news"])
    assert again.extra["padded_tokens"] == 3 * 16 + 48


def test_the_scorer_batches_by_tokens_when_told_to(tiny_bundle: Path) -> None:
    # Eight short chat lines (the 16 bucket): 2 rows a call by rows; 64 tokens a call
    # holds 4 of them, whatever the row cap.
    texts, sources = SHORT_CHAT * 2 + SHORT_CHAT[:2], ["chat"] * 8
    by_rows = OnnxScorer(tiny_bundle, variant="teacher-fp32", max_group=2)
    by_tokens = OnnxScorer(tiny_bundle, variant="teacher-fp32", max_group=2, max_tokens=64)
    rows, tokens = by_rows.score(texts, sources), by_tokens.score(texts, sources)
    assert (rows.extra["calls"], tokens.extra["calls"]) == (4, 2)
    np.testing.assert_allclose(rows.sentiment, tokens.sentiment, atol=1e-5)
    # INT8 scored one text per call stays one text per call.
    alone = OnnxScorer(tiny_bundle, variant="student2-int8", max_tokens=64)
    assert alone.score(texts, sources).extra["calls"] == 8


def test_padding_length_does_not_change_the_scores(tiny_bundle: Path) -> None:
    # FP32: masked positions are exact no-ops. (INT8 differs by about 0.01: dynamic
    # quantization takes its activation scale over the padded tensor.)
    texts, sources = [*SHORT_CHAT, LONG_TEXT], ["chat", "chat", "chat", "news"]
    tight = OnnxScorer(tiny_bundle, variant="teacher-fp32").score(texts, sources)
    padded = OnnxScorer(tiny_bundle, variant="teacher-fp32", pad_to_bucket=True).score(
        texts, sources)
    np.testing.assert_allclose(tight.sentiment, padded.sentiment, atol=1e-4)
    np.testing.assert_allclose(tight.topic, padded.topic, atol=1e-4)


def test_int8_scores_are_a_function_of_the_text_alone(tiny_bundle: Path) -> None:
    """A replay puts a text in another batch: its INT8 scores must not move. Shared calls
    (dynamic quantization's activation scales taken over the call) move them."""
    texts = [*NEWS, *CHAT, *SHORT_CHAT, LONG_TEXT]
    sources = ["news"] * len(NEWS) + ["chat"] * (len(CHAT) + len(SHORT_CHAT)) + ["news"]
    scorer = OnnxScorer(tiny_bundle, variant="student2-int8")
    assert scorer.rows_alone
    whole = scorer.score(texts, sources)  # type: ignore[arg-type]
    shared = OnnxScorer(tiny_bundle, variant="student2-int8", int8_rows_alone=False)
    moved = 0.0
    for i, (text, source) in enumerate(zip(texts, sources, strict=True)):
        mates = [*texts[:i][-3:], text]  # other company than in the whole batch
        mate_src = [*sources[:i][-3:], source]
        alone = scorer.score(mates, mate_src)  # type: ignore[arg-type]
        assert np.array_equal(alone.sentiment[-1], whole.sentiment[i]), text
        assert np.array_equal(alone.topic[-1], whole.topic[i]), text
        other = shared.score(mates, mate_src)  # type: ignore[arg-type]
        moved = max(moved, float(np.abs(other.sentiment[-1] - whole.sentiment[i]).max()))
    assert moved > 0  # what rows alone prevent is real on this model


def test_rerun_skips_finished_steps(tiny_bundle: Path, data_dir: Path) -> None:
    cfg = profile_config("tiny", data_dir, tiny_bundle, threads=2, command="pytest tiny")
    buf = io.StringIO()
    reporter = Reporter(console=Console(file=buf, width=200))
    assert build_bundle(cfg, reporter) == tiny_bundle
    assert "nothing to do" in buf.getvalue()
    # An interrupted build: the last steps' markers are gone, the earlier ones are reused.
    (tiny_bundle / COMPLETE).unlink()
    (tiny_bundle / "_work" / "done" / "evaluate-student2-int8.json").unlink()
    buf.truncate(0)
    build_bundle(cfg, reporter)
    log = buf.getvalue()
    assert "skip train-teacher" in log and "skip distill-student2" in log
    assert "step evaluate-student2-int8" in log
    assert (tiny_bundle / COMPLETE).is_file()
    load_bundle(tiny_bundle)


def test_a_changed_export_setting_keeps_the_trained_models(
    tiny_bundle: Path, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(tiny_bundle, out)  # a real copy: the rebuild rewrites files in place
    cfg = profile_config("tiny", data_dir, out, threads=2, command="pytest tiny")
    cfg = cfg.model_copy(update={"int8_per_channel": False})
    buf = io.StringIO()
    build_bundle(cfg, Reporter(console=Console(file=buf, width=200)))
    log = buf.getvalue()
    assert "skip train-teacher" in log and "skip distill-student2" in log
    assert "step quantize-teacher" in log and "step verify-student2" in log
    manifest = load_bundle(out).manifest
    assert any("weight scales per tensor" in n for n in manifest.build.notes)


def test_a_cls_pooled_build_exports_verifies_and_serves(data_dir: Path, tmp_path: Path) -> None:
    from streamer.network.heads import load_model

    out = tmp_path / "cls"
    cfg = profile_config("tiny", data_dir, out, threads=2, command="pytest tiny cls",
                         pooling="cls")
    # One variant per model keeps it short; verify still compares each with PyTorch.
    cfg = cfg.model_copy(update={"teacher_precisions": ["fp32"], "student_precisions": ["int8"]})
    build_bundle(cfg, Reporter(enabled=False))
    manifest = load_bundle(out).manifest
    assert manifest.pooling == "cls"
    model, meta = load_model(out / "_work" / "models" / "student2")
    assert meta.pooling == "cls" and model.pooling == "cls"
    got = OnnxScorer(out, variant="student2-int8").score(CHAT, ["chat"] * len(CHAT))
    assert got.sentiment.shape == (len(CHAT), 3)
    np.testing.assert_allclose(got.sentiment.sum(axis=1), 1.0, atol=1e-5)


def test_a_build_with_teacher_seeds_keeps_the_candidate_the_held_out_rows_prefer(
    data_dir: Path, tmp_path: Path
) -> None:
    import torch

    from streamer.network.heads import load_model
    from streamer.training.build import Builder

    out = tmp_path / "seeds"
    cfg = profile_config("tiny", data_dir, out, threads=2, command="pytest tiny seeds")
    cfg = cfg.model_copy(update={"teacher_seeds": [13, 14], "teacher_precisions": ["int8"],
                                 "student_precisions": ["int8"]})
    build_bundle(cfg, Reporter(enabled=False))
    sel = load_bundle(out).manifest.build.teacher_selection
    assert sel is not None and set(sel.scores) == {13, 14}
    mean = {s: sum(acc.values()) / len(acc) for s, acc in sel.scores.items()}
    assert sel.chosen == max(mean, key=lambda s: (mean[s], -s))
    builder = Builder(cfg)
    kept, held = builder.selection_split()
    assert sel.rows == len(held) > 0
    assert len(kept.train) + len(held) == len(builder.split.train)
    # The chosen candidate is the teacher; the other one is a different model.
    teacher, _ = load_model(out / "_work" / "models" / "teacher")
    for seed in (13, 14):
        cand, _ = load_model(out / "_work" / "models" / f"teacher-s{seed}")
        same = all(torch.equal(a, b) for a, b in
                   zip(teacher.state_dict().values(), cand.state_dict().values(), strict=True))
        assert same == (seed == sel.chosen)
    assert "held out to choose" in (out / CARD_MD).read_text("utf-8")


def test_runtime_path_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import streamer.bundle.load, streamer.score.onnx_scorer, streamer.training.quick\n"
        "import streamer.cli.models_cmd, streamer.training.build, streamer.training.card\n"
        "bad = [m for m in ('torch', 'transformers', 'onnx') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_eval_and_list(tiny_bundle: Path, tmp_path: Path, data_dir: Path) -> None:
    from streamer.cli.models_cmd import models

    rows = list(csv.DictReader((data_dir / "phrasebank" / "train.csv").open()))[:40]
    sample = tmp_path / "sample.csv"
    with sample.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in rows)
    runner = CliRunner()
    res = runner.invoke(models, ["eval", str(tiny_bundle), "--data", str(sample), "--json"])
    assert res.exit_code == 0, res.output
    figures = json.loads(res.output)
    (variant,) = figures
    assert figures[variant]["metrics"]["n"] == 40
    assert len(figures[variant]["metrics"]["confusion"]) == 3
    res = runner.invoke(models, ["eval", str(tiny_bundle), "--data", str(sample),
                                 "--variant", "teacher-int8"])
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output and "confusion" in res.output
    res = runner.invoke(models, ["list", "--dir", str(tiny_bundle.parent)])
    assert res.exit_code == 0, res.output
    assert "tiny" in res.output and "complete" in res.output


def test_cli_eval_reads_r8_labels_through_the_builds_mapping(
    tiny_bundle: Path, tmp_path: Path, data_dir: Path
) -> None:
    from streamer.cli.models_cmd import models

    rows = list(csv.DictReader((data_dir / "reuters-topics" / "train.csv").open()))
    sample = tmp_path / "r8.csv"
    with sample.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        for label in ("energy-oil", "shipping", "interest-rates"):
            writer.writerows({"text": r["text"], "label": label}
                             for r in [r for r in rows if r["label"] == label][:5])
    res = CliRunner().invoke(models, ["eval", str(tiny_bundle), "--data", str(sample)])
    assert res.exit_code == 0, res.output
    assert "reuters-topics mapping" in res.output and "energy-oil -> Energy | Oil" in res.output
    res = CliRunner().invoke(models, ["eval", str(tiny_bundle), "--data", str(sample), "--json"])
    (figures,) = json.loads(res.output).values()
    assert figures["metrics"]["n"] == 15
    assert len(figures["metrics"]["labels"]) == 20  # scored as the 20-topic head


@pytest.mark.parametrize("bad_label", ["bullish"])
def test_cli_eval_rejects_unknown_labels(tiny_bundle: Path, tmp_path: Path, bad_label: str
                                         ) -> None:
    from streamer.cli.models_cmd import models

    sample = tmp_path / "odd.csv"
    sample.write_text(f"text,label\nshares up,{bad_label}\nshares down,negative\n")
    res = CliRunner().invoke(models, ["eval", str(tiny_bundle), "--data", str(sample),
                                      "--head", "sentiment"])
    assert res.exit_code == 1
    assert bad_label in res.output


def test_scorer_is_thread_safe(tiny_bundle: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    scorer = OnnxScorer(tiny_bundle, variant="teacher-fp32")
    texts = [*NEWS, *CHAT]
    sources = ["news"] * len(NEWS) + ["chat"] * len(CHAT)
    expected = scorer.score(texts, sources)  # type: ignore[arg-type]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: scorer.score(texts, sources), range(16)))  # type: ignore[arg-type]
    for r in results:
        np.testing.assert_allclose(r.sentiment, expected.sentiment, atol=1e-6)
        np.testing.assert_allclose(r.topic, expected.topic, atol=1e-6)
