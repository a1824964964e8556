"""The bundle for the ecosystem: the Hugging Face layout of its models, and a model card in
the Hugging Face layout whose figures are the build's own."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamer.bundle.load import load_bundle
from streamer.bundle.tokenize import SourceTokenizers
from streamer.score.onnx_scorer import OnnxScorer
from streamer.training.card import CARD_JSON, CARD_MD, ModelCard, onnx_usage
from streamer.training.hf_export import HEADS_CONFIG, HfHeads, usage
from streamer.training.provenance import bundle_licence

CHAT = ["$TSLA to the moon!!", "ugh, $AAPL guidance is a disaster", "ok"]
NEWS = [
    "Oil prices rose on Tuesday after OPEC agreed to extend output cuts. " * 6,
    "XYZ Corp said it agreed to acquire ABC Inc for 1.2 billion dollars in cash.",
]
SECTIONS = [
    "## Model details", "## Intended use", "### Out-of-scope use", "## Training data",
    "### Label mapping", "## Training procedure", "## Evaluation", "## Limitations and bias",
    "## How to use", "### With transformers", "## Licence and citation",
]


def test_manifest_lists_the_hf_folders(tiny_bundle: Path) -> None:
    m = load_bundle(tiny_bundle, verify=()).manifest
    assert [f.model for f in m.hf] == ["teacher", "student2"]
    for f in m.hf:
        folder = tiny_bundle / f.path
        assert f.path == f"hf/{f.model}"
        assert sorted(p.name for p in folder.iterdir()) == f.files
        assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "heads.safetensors", "heads.json"} <= set(f.files)
        variant = next(v for v in m.variants if v.name.startswith(f"{f.model}-"))
        assert (f.role, f.layers) == (variant.role, variant.layers)
        heads = HfHeads.model_validate_json((folder / HEADS_CONFIG).read_text())
        assert heads.labels == {h.name: h.labels for h in m.heads}
        assert heads.pooling == m.pooling and heads.max_length == m.max_length
        assert heads.layers_from_base == variant.layers_from_base


def test_hf_tokenizer_gives_the_bundle_ids(tiny_bundle: Path) -> None:
    from transformers import AutoTokenizer

    m = load_bundle(tiny_bundle, verify=()).manifest
    bundle_tok = SourceTokenizers(tiny_bundle / m.tokenizer, m.max_length)
    tok = AutoTokenizer.from_pretrained(tiny_bundle / "hf" / "student2")
    for texts, source in ((CHAT, "chat"), (NEWS, "news")):
        got = tok(texts, truncation=True, max_length=m.max_length[source])["input_ids"]
        assert got == bundle_tok.encode(texts, [source] * len(texts))


def _run_hf_snippet(folder: Path, tmp_path: Path) -> dict[str, dict[str, list[list[float]]]]:
    """The documented snippet, run offline with an empty Hugging Face cache."""
    dump = "{h: p.tolist() for h, p in probs.items()}"
    code = (
        usage(str(folder), CHAT, "chat") + f"chat_probs = {dump}\n"
        + usage(str(folder), NEWS, "news") + f"news_probs = {dump}\n"
        + "print(json.dumps({'chat': chat_probs, 'news': news_probs}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf-home")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out: dict[str, dict[str, list[list[float]]]] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("model", ["teacher", "student2"])
def test_hf_folder_loads_offline_and_scores_like_the_bundle(
    tiny_bundle: Path, tmp_path: Path, model: str
) -> None:
    import torch

    from streamer.network.heads import load_model

    got = _run_hf_snippet(tiny_bundle / "hf" / model, tmp_path)
    m = load_bundle(tiny_bundle, verify=()).manifest
    tokenizers = SourceTokenizers(tiny_bundle / m.tokenizer, m.max_length)
    reference, _ = load_model(tiny_bundle / "_work" / "models" / model)
    onnx = OnnxScorer(tiny_bundle, variant=f"{model}-{'fp32' if model == 'teacher' else 'fp16'}")
    for texts, source in ((CHAT, "chat"), (NEWS, "news")):
        ids = tokenizers.encode(texts, [source] * len(texts))
        scored = onnx.score(texts, [source] * len(texts))  # type: ignore[list-item]
        for i, row in enumerate(ids):
            x = torch.tensor([row])
            with torch.no_grad():
                logits = reference(x, torch.ones_like(x))
            for head in ("sentiment", "topic"):
                probs = np.asarray(got[source][head][i])
                torch_probs = torch.softmax(logits[head], -1)[0].numpy()
                np.testing.assert_allclose(probs, torch_probs, atol=1e-5)
                # FP32 ONNX is exact to ~1e-6; the student's FP16 graph to its tolerance.
                onnx_probs = getattr(scored, head)[i]
                np.testing.assert_allclose(probs, onnx_probs,
                                           atol=1e-4 if model == "teacher" else 2e-3)


def _front_matter(md: str) -> dict[str, object]:
    import yaml

    assert md.startswith("---\n")
    meta = yaml.safe_load(md[4:md.index("\n---\n", 4)])
    assert isinstance(meta, dict)
    return meta


def test_card_follows_the_hugging_face_layout(tiny_bundle: Path) -> None:
    md = (tiny_bundle / CARD_MD).read_text("utf-8")
    meta = _front_matter(md)
    assert meta["language"] == ["en"] and meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-classification"
    assert meta["metrics"] == ["accuracy", "f1"]
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "takala/financial_phrasebank" in meta["datasets"]  # type: ignore[operator]
    # PhraseBank's non-commercial, share-alike terms bind the whole bundle.
    assert meta["license"] == "other" and "cc-by-nc-sa-3.0" in str(meta["license_name"])
    assert "CC BY-NC-SA 3.0" in md and "non-commercial purposes only" in md
    assert "Apache-2.0" in md  # the base encoder's licence
    positions = [md.index(s) for s in SECTIONS]
    assert positions == sorted(positions), "sections out of order"


def test_card_figures_are_the_builds_own(tiny_bundle: Path) -> None:
    md = (tiny_bundle / CARD_MD).read_text("utf-8")
    manifest = load_bundle(tiny_bundle, verify=()).manifest
    card = ModelCard.model_validate_json((tiny_bundle / CARD_JSON).read_text("utf-8"))
    for d in manifest.datasets:
        assert f"| {d.name} | {d.head} | {d.source} | {d.rows} | {d.train_rows} | " \
               f"{d.val_rows} |" in md
        for raw, reason in d.label_reasons.items():
            head_label = d.label_mapping[raw].replace("|", "\\|")
            assert f"| {raw} | {head_label} | {reason.replace('|', chr(92) + '|')} |" in md
    for step, seconds in manifest.build.steps_s.items():
        assert f"| {step} | {seconds:.1f} |" in md
    assert {"hf-teacher", "hf-student2"} <= set(manifest.build.steps_s)
    assert manifest.build.duration_s is not None
    assert f"Build time: {manifest.build.duration_s:.0f}s" in md
    for v in card.variants:
        m = v.heads["sentiment"]
        assert f"| {v.name} | {v.precision} | {v.layers} | {v.size_bytes / 1e6:.1f} | " \
               f"{100 * m.accuracy:.1f} / {100 * m.macro_f1:.1f} |" in md


def test_card_onnx_snippet_scores_like_the_worker(tiny_bundle: Path) -> None:
    card = ModelCard.model_validate_json((tiny_bundle / CARD_JSON).read_text("utf-8"))
    scorer = OnnxScorer(tiny_bundle, variant=card.default_variant["cpu"])
    for text, source in ((CHAT[0], "chat"), (NEWS[0], "news")):
        namespace: dict[str, object] = {}
        with contextlib.redirect_stdout(io.StringIO()):
            exec(onnx_usage(card, str(tiny_bundle), [text], source), namespace)
        probs = namespace["probs"]
        assert isinstance(probs, dict)
        want = scorer.score([text], [source])  # type: ignore[list-item]
        np.testing.assert_allclose(probs["sentiment"], want.sentiment, atol=1e-5)
        np.testing.assert_allclose(probs["topic"], want.topic, atol=1e-5)


def test_bundle_licence_follows_the_most_binding_input() -> None:
    base = "sentence-transformers/all-MiniLM-L6-v2"
    assert bundle_licence(["tfn-sentiment", "tfn-topic"], base).hf_license == "apache-2.0"
    only_pb = bundle_licence(["tfn-sentiment", "phrasebank"], base)
    assert (only_pb.hf_license, only_pb.binding) == ("cc-by-nc-sa-3.0", ["phrasebank"])
    mine = bundle_licence(["tfn-topic", "my-own-file"], base)
    assert mine.hf_license == "other" and mine.binding == ["my-own-file"]
