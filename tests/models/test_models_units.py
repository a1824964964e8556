"""Pieces of the model pipeline that need no trained model: data, tokens, metrics, choices."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from streamer.bundle.manifest import VariantInfo
from streamer.bundle.tokenize import bucket_length, bucketed_batches, pad_batch, plain_batches
from streamer.network.encoder import pick_layers
from streamer.score.onnx_scorer import execution_providers
from streamer.training.build import choose_defaults, provisional_defaults
from streamer.training.card import Speed, VariantCard
from streamer.training.data import (
    DataError,
    DatasetSpec,
    hold_out,
    load_split,
    read_rows,
    stratified_split,
)
from streamer.training.metrics import HeadMetrics, head_metrics


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("text,label\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows))
    return path


@pytest.fixture
def small_specs(tmp_path: Path) -> list[DatasetSpec]:
    rng = random.Random(0)
    sent = [(f"tweet {i}", rng.choice(["Bearish", "Bullish", "Neutral"])) for i in range(200)]
    topic = [(f"news {i}", rng.choice(["oil", "fx", "rates", "grain"])) for i in range(120)]
    jl = tmp_path / "topic.jsonl"
    jl.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in topic))
    return [
        DatasetSpec(
            name="tweets",
            path=_csv(tmp_path / "s.csv", sent),
            head="sentiment",
            source="chat",
            label_map={"Bearish": "negative", "Bullish": "positive", "Neutral": "neutral"},
        ),
        DatasetSpec(name="wire", path=jl, head="topic"),
    ]


def test_split_is_seeded_stratified_and_disjoint(small_specs: list[DatasetSpec]) -> None:
    a = load_split(small_specs, seed=1, val_fraction=0.2)
    b = load_split(small_specs, seed=1, val_fraction=0.2)
    c = load_split(small_specs, seed=2, val_fraction=0.2)
    assert [e.text for e in a.val] == [e.text for e in b.val]
    assert [e.text for e in a.val] != [e.text for e in c.val]
    assert not {e.text for e in a.val} & {e.text for e in a.train}
    assert len(a.val) + len(a.train) == 320
    # Labels come from the data (mapped), sorted; the mapping is recorded per dataset.
    assert a.labels["sentiment"] == ["negative", "neutral", "positive"]
    assert a.labels["topic"] == ["fx", "grain", "oil", "rates"]
    tweets = next(d for d in a.datasets if d.name == "tweets")
    assert tweets.label_mapping == {"Bearish": "negative", "Bullish": "positive",
                                    "Neutral": "neutral"}
    assert tweets.val_rows == sum(1 for e in a.val if e.dataset == "tweets")
    assert {e.source for e in a.train if e.dataset == "tweets"} == {"chat"}


def test_the_selection_slice_is_held_out_of_training_per_dataset_and_label(
    small_specs: list[DatasetSpec],
) -> None:
    split = load_split(small_specs, seed=1, val_fraction=0.2)
    kept, held = hold_out(split.train, 0.25, seed=1)
    assert sorted(e.text for e in kept + held) == sorted(e.text for e in split.train)
    assert not {e.text for e in kept} & {e.text for e in held}
    assert not {e.text for e in held} & {e.text for e in split.val}
    for name in {e.dataset for e in split.train}:
        for label in {e.label for e in split.train if e.dataset == name}:
            n = sum(1 for e in split.train if e.dataset == name and e.label == label)
            got = sum(1 for e in held if e.dataset == name and e.label == label)
            assert got == min(max(round(n * 0.25), 1), n - 1)
    assert [e.text for e in hold_out(split.train, 0.25, seed=1)[1]] == [e.text for e in held]
    assert [e.text for e in hold_out(split.train, 0.25, seed=2)[1]] != [e.text for e in held]


def test_stratified_split_keeps_label_shares() -> None:
    labels = ["a"] * 90 + ["b"] * 9 + ["c"]
    train, val = stratified_split(labels, 0.1, random.Random(0))
    val_labels = [labels[i] for i in val]
    assert val_labels.count("a") == 9 and val_labels.count("b") == 1
    assert "c" not in val_labels  # a single-row label stays in training
    assert sorted(train + val) == list(range(100))


def test_read_rows_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,sentiment\nx,y\n")
    with pytest.raises(DataError, match="'text' and 'label'"):
        read_rows(bad)
    with pytest.raises(DataError, match="does not exist"):
        read_rows(tmp_path / "nope.csv")
    jl = tmp_path / "x.jsonl"
    jl.write_text('{"text": "a"}\n')
    with pytest.raises(DataError, match=r"x\.jsonl:1"):
        read_rows(jl)


def test_every_head_needs_data(small_specs: list[DatasetSpec]) -> None:
    with pytest.raises(DataError, match="no dataset for head"):
        load_split(small_specs[:1])


def test_pick_layers() -> None:
    assert pick_layers(6, 2) == [0, 5]
    assert pick_layers(6, 3) == [0, 2, 5]
    assert pick_layers(6, 6) == [0, 1, 2, 3, 4, 5]
    assert pick_layers(6, 1) == [5]
    with pytest.raises(ValueError):
        pick_layers(6, 7)


def test_buckets_and_padding() -> None:
    assert [bucket_length(n) for n in (1, 16, 17, 64, 65, 600)] == [16, 16, 32, 64, 128, 600]
    ids = [[1] * 40, [2] * 3, [3] * 20, [4] * 5]
    groups = bucketed_batches(ids, (16, 32, 64))
    assert [(sorted(rows.tolist()), n) for rows, n in groups] == [([1, 3], 16), ([2], 32),
                                                                  ([0], 64)]
    x, m = pad_batch([[5, 6], [7]], 4, pad_id=0)
    assert x.tolist() == [[5, 6, 0, 0], [7, 0, 0, 0]] and m.sum() == 3
    capped = bucketed_batches([[1]] * 5, (16,), max_batch=2)
    assert [len(r) for r, _ in capped] == [2, 2, 1]


def test_metrics_match_sklearn() -> None:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    m = head_metrics(y, p, ["a", "b", "c", "d"])
    assert m.accuracy == pytest.approx(accuracy_score(y, p))
    assert m.macro_f1 == pytest.approx(f1_score(y, p, average="macro"))
    assert m.confusion == confusion_matrix(y, p).tolist()


def _variant(name: str, precision: str, layers: int, size: int) -> VariantInfo:
    return VariantInfo(name=name, file=f"{name}.onnx", sha256="0" * 64, size_bytes=size,
                       precision=precision,
                       device="cuda" if precision == "fp16" else "cpu",
                       role="teacher" if name.startswith("teacher") else "student",
                       layers=layers)


def _card(v: VariantInfo, acc: float, b32: float) -> VariantCard:
    m = HeadMetrics(n=10, accuracy=acc, macro_f1=acc, per_label_f1={}, confusion=[], labels=[])
    return VariantCard(name=v.name, precision=v.precision, device=v.device, layers=v.layers,
                       size_bytes=v.size_bytes, heads={"sentiment": m, "topic": m},
                       speed=Speed(batch1_msgs_per_s=1, batch32_msgs_per_s=b32,
                                   intra_op_threads=1, texts=10))


def test_default_variant_choice() -> None:
    t32 = _variant("teacher-fp32", "fp32", 6, 90)
    t8 = _variant("teacher-int8", "int8", 6, 23)
    s3 = _variant("student3-int8", "int8", 3, 17)
    s2 = _variant("student2-int8", "int8", 2, 15)
    t16 = _variant("teacher-fp16", "fp16", 6, 45)
    s16 = _variant("student3-fp16", "fp16", 3, 34)
    variants = [t32, t8, s3, s2, t16, s16]
    assert provisional_defaults(variants) == {"cpu": "student2-int8", "cuda": "teacher-fp16"}
    cards = [_card(t32, 0.90, 50), _card(t8, 0.895, 100), _card(s3, 0.89, 200),
             _card(s2, 0.87, 300), VariantCard(name="teacher-fp16", precision="fp16",
                                                device="cuda", layers=6, size_bytes=45)]
    # student2 is fastest but 3 points down; student3 is within 1.5 points and faster
    # than the teacher's INT8.
    assert choose_defaults(variants, cards) == {"cpu": "student3-int8", "cuda": "teacher-fp16"}


def test_the_default_student_must_be_close_on_every_head_not_on_average() -> None:
    t32 = _variant("teacher-fp32", "fp32", 6, 90)
    s3 = _variant("student3-int8", "int8", 3, 17)
    s2 = _variant("student2-int8", "int8", 2, 15)

    def card(v: VariantInfo, sentiment: float, topic: float, b32: float) -> VariantCard:
        c = _card(v, sentiment, b32)
        c.heads["topic"] = c.heads["topic"].model_copy(update={"accuracy": topic})
        return c

    # student2's mean accuracy is 1.4 points down (within 1.5), but sentiment is 2.6 down.
    cards = [card(t32, 0.872, 0.991, 50), card(s3, 0.858, 0.989, 170),
             card(s2, 0.846, 0.989, 250)]
    assert choose_defaults([t32, s3, s2], cards)["cpu"] == "student3-int8"


def test_kd_loss_and_masked_ce() -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from streamer.training.config import DistillConfig
    from streamer.training.distill import kd_loss
    from streamer.training.train import masked_cross_entropy

    g = torch.Generator().manual_seed(0)
    logits = {"sentiment": torch.randn(6, 3, generator=g), "topic": torch.randn(6, 8, generator=g)}
    head = torch.tensor([0, 0, 1, 1, 0, 1])
    label = torch.tensor([2, 0, 7, 1, 1, 3])
    ce = masked_cross_entropy(logits, head, label, ["sentiment", "topic"])
    s = head == 0
    expected = (F.cross_entropy(logits["sentiment"][s], label[s], reduction="sum")
                + F.cross_entropy(logits["topic"][~s], label[~s], reduction="sum")) / 6
    assert float(ce) == pytest.approx(float(expected), rel=1e-6)
    # A batch holding one task only is still finite (the other head is simply absent).
    only = masked_cross_entropy(logits, torch.zeros(6, dtype=torch.long),
                                torch.zeros(6, dtype=torch.long), ["sentiment", "topic"])
    assert torch.isfinite(only)
    # Student == teacher: the KL term vanishes and only (1 - alpha) * CE remains.
    cfg = DistillConfig(temperature=2.0, alpha=0.7)
    kd = kd_loss(logits, logits, head, label, ["sentiment", "topic"], cfg)
    assert float(kd) == pytest.approx(0.3 * float(ce), rel=1e-5)
    other = {k: v.flip(0) for k, v in logits.items()}
    assert float(kd_loss(logits, other, head, label, ["sentiment", "topic"], cfg)) > float(kd)


def test_label_smoothing_applies_per_head() -> None:
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    from streamer.training.train import masked_cross_entropy

    g = torch.Generator().manual_seed(1)
    logits = {"sentiment": torch.randn(4, 3, generator=g), "topic": torch.randn(4, 8, generator=g)}
    head = torch.tensor([0, 1, 0, 1])
    label = torch.tensor([1, 5, 2, 0])
    got = masked_cross_entropy(logits, head, label, ["sentiment", "topic"], label_smoothing=0.1)
    s = head == 0
    expected = (
        F.cross_entropy(logits["sentiment"][s], label[s], reduction="sum", label_smoothing=0.1)
        + F.cross_entropy(logits["topic"][~s], label[~s], reduction="sum", label_smoothing=0.1)
    ) / 4
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    assert float(got) != pytest.approx(
        float(masked_cross_entropy(logits, head, label, ["sentiment", "topic"])), rel=1e-3
    )


def test_the_full_profile_pools_cls_and_the_others_the_mean(data_dir: Path, tmp_path: Path
                                                             ) -> None:
    from streamer.training.build import profile_config

    assert profile_config("full", data_dir, tmp_path / "full").pooling == "cls"
    assert profile_config("quick", data_dir, tmp_path / "q").pooling == "mean"
    assert profile_config("tiny", data_dir, tmp_path / "t").pooling == "mean"
    assert profile_config("full", data_dir, tmp_path / "f", pooling="mean").pooling == "mean"


def test_only_the_full_profile_chooses_among_teacher_seeds(data_dir: Path, tmp_path: Path
                                                          ) -> None:
    from streamer.training.build import profile_config

    assert profile_config("full", data_dir, tmp_path / "f", seed=5).teacher_seeds == [5, 13, 21]
    assert profile_config("quick", data_dir, tmp_path / "q").teacher_seeds == []
    assert profile_config("tiny", data_dir, tmp_path / "t").teacher_seeds == []


def test_settings_added_later_keep_older_fingerprints_while_unused(
    data_dir: Path, tmp_path: Path
) -> None:
    from streamer.training.build import profile_config

    cfg = profile_config("quick", data_dir, tmp_path / "q")
    # A cached quick bundle stays valid: its fingerprint hashes what it hashed before.
    assert not {"teacher_seeds", "selection_fraction"} & set(cfg.fingerprint_inputs())
    full = profile_config("full", data_dir, tmp_path / "f")
    assert "teacher_seeds" in full.fingerprint_inputs(training_only=True)
    changed = cfg.model_copy(update={"selection_fraction": 0.2})
    assert changed.fingerprint() != cfg.fingerprint()
    seeded = cfg.model_copy(update={"teacher_seeds": [1, 2]})
    assert seeded.fingerprint(training_only=True) != cfg.fingerprint(training_only=True)


def test_the_training_fingerprint_ignores_export_settings(data_dir: Path, tmp_path: Path) -> None:
    from streamer.training.build import profile_config

    cfg = profile_config("full", data_dir, tmp_path / "full")
    export_change = cfg.model_copy(update={"int8_per_channel": False, "verify_rows": 64})
    assert export_change.fingerprint(training_only=True) == cfg.fingerprint(training_only=True)
    assert export_change.fingerprint() != cfg.fingerprint()
    reseeded = cfg.model_copy(update={"seed": 14})
    assert reseeded.fingerprint(training_only=True) != cfg.fingerprint(training_only=True)


ALL_EPS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_a_gpu_prefers_tensorrt_then_cuda_and_always_keeps_the_cpu_fallback(
    tmp_path: Path,
) -> None:
    eps = execution_providers("cuda", ALL_EPS, trt_cache=tmp_path)
    assert [e if isinstance(e, str) else e[0] for e in eps] == ALL_EPS
    trt = eps[0]
    assert isinstance(trt, tuple) and trt[1]["trt_fp16_enable"] == "True"
    assert trt[1]["trt_engine_cache_path"] == str(tmp_path)


def test_tensorrt_can_be_switched_off_and_is_never_asked_for_when_absent() -> None:
    assert execution_providers("cuda", ALL_EPS, tensorrt=False) == ALL_EPS[1:]
    assert execution_providers("cuda", ALL_EPS[1:]) == ALL_EPS[1:]
    assert execution_providers("cpu", ALL_EPS) == ["CPUExecutionProvider"]


def test_batching_by_tokens_gives_short_rows_bigger_calls_than_long_ones() -> None:
    # 6 rows of the 16 bucket and 3 of the 64 one, at most 64 padded tokens a call: 4 short
    # rows share a call, a long row is alone; no row cap applies.
    ids = [[1] * n for n in (10, 50, 12, 60, 8, 9, 55, 11, 14)]
    groups = bucketed_batches(ids, (16, 32, 64), max_tokens=64)
    assert [(len(rows), length) for rows, length in groups] == [
        (4, 16), (2, 16), (1, 64), (1, 64), (1, 64)]
    # A row longer than the budget still gets a call.
    assert [len(r) for r, _ in bucketed_batches([[1] * 100], (128,), max_tokens=64)] == [1]


def test_unbucketed_batches_keep_input_order_and_pad_to_their_own_longest() -> None:
    ids = [[1] * n for n in (5, 40, 3, 9, 7)]
    groups = plain_batches(ids, 2)
    assert [(list(rows), length) for rows, length in groups] == [
        ([0, 1], 40), ([2, 3], 9), ([4], 7)]


def test_every_r8_topic_maps_onto_a_tfn_topic_with_a_reason(data_dir: Path) -> None:
    from streamer.taxonomy import R8_TO_TFN

    tfn = {label for _, label in read_rows(data_dir / "tfn-topic" / "train.csv")}
    r8 = {label for _, label in read_rows(data_dir / "reuters-topics" / "train.csv")}
    assert len(tfn) == 20
    # Both spellings of R8 (the file's and Reuters' short names) map; every target is a
    # TFN topic written exactly as the TFN file writes it, and every choice says why.
    assert r8 | {"earn", "acq", "crude", "money-fx", "interest", "grain", "ship"} <= set(R8_TO_TFN)
    for mapping in R8_TO_TFN.values():
        assert mapping.topic in tfn
        assert len(mapping.reason) > 20


def test_the_topic_head_learns_exactly_the_tfn_topics(data_dir: Path) -> None:
    from streamer.training.data import default_specs

    split = load_split(default_specs(data_dir), max_rows_per_dataset=400)
    tfn = sorted({label for _, label in read_rows(data_dir / "tfn-topic" / "train.csv")})
    assert split.labels["topic"] == tfn
    r8 = next(d for d in split.datasets if d.name == "reuters-topics")
    assert r8.label_mapping["energy-oil"] == "Energy | Oil"
    assert set(r8.label_reasons) == set(r8.label_mapping)
    assert {e.source for e in split.train if e.dataset == "tfn-topic"} == {"chat"}
