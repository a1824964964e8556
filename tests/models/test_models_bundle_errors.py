"""A damaged or mismatched bundle fails with a BundleError naming the problem and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamer.bundle.errors import BundleError
from streamer.bundle.load import load_bundle
from streamer.score.base import ScorerError
from streamer.score.onnx_scorer import OnnxScorer
from streamer.score.select import load_scorer
from streamer.settings import Settings


def _edit_manifest(bundle: Path, change: dict[str, object]) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))


def test_intact_copy_loads(bundle_copy: Path) -> None:
    load_bundle(bundle_copy)
    OnnxScorer(bundle_copy).score(["fine"], ["chat"])


def test_missing_model_file(bundle_copy: Path) -> None:
    (bundle_copy / "student2-int8.onnx").unlink()
    with pytest.raises(BundleError, match=r"missing file student2-int8\.onnx") as err:
        OnnxScorer(bundle_copy)
    assert "streamer models build" in str(err.value)


def test_missing_manifest(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        load_bundle(bundle_copy)


def test_missing_tokenizer(bundle_copy: Path) -> None:
    (bundle_copy / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=r"missing file tokenizer\.json"):
        load_bundle(bundle_copy)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        OnnxScorer(tmp_path / "nowhere")


def test_other_format_version(bundle_copy: Path) -> None:
    _edit_manifest(bundle_copy, {"format_version": 2})
    with pytest.raises(BundleError, match="format version 2") as err:
        load_bundle(bundle_copy)
    assert "reads version 1" in str(err.value) and "Rebuild" in str(err.value)


def test_wrong_label_count(bundle_copy: Path) -> None:
    data = json.loads((bundle_copy / "manifest.json").read_text())
    data["heads"][1]["labels"] = data["heads"][1]["labels"][:-1]  # 19 topic labels, model has 20
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="label count mismatch") as err:
        OnnxScorer(bundle_copy, variant="student2-int8")
    assert "'topic'" in str(err.value) and "outputs 20 columns" in str(err.value)


def test_sha_mismatch(bundle_copy: Path) -> None:
    path = bundle_copy / "student2-int8.onnx"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # same size, different content
    path.unlink()  # a hard link to the session's bundle: replace, never write through
    path.write_bytes(bytes(blob))
    with pytest.raises(BundleError, match=r"sha256 mismatch for student2-int8\.onnx"):
        OnnxScorer(bundle_copy, variant="student2-int8")
    # Only the variant in use is hashed: another variant still loads.
    OnnxScorer(bundle_copy, variant="teacher-int8")


def test_truncated_file(bundle_copy: Path) -> None:
    path = bundle_copy / "teacher-int8.onnx"
    blob = path.read_bytes()
    path.unlink()
    path.write_bytes(blob[:1000])
    with pytest.raises(BundleError, match="truncated or replaced"):
        load_bundle(bundle_copy, verify=())


def test_unknown_variant(bundle_copy: Path) -> None:
    with pytest.raises(BundleError, match="no variant 'student9-int8'") as err:
        OnnxScorer(bundle_copy, variant="student9-int8")
    assert "student2-int8" in str(err.value)


def test_invalid_manifest(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle_copy)
    (bundle_copy / "manifest.json").write_text(json.dumps({"format_version": 1, "name": "x"}))
    with pytest.raises(BundleError, match="not a valid manifest"):
        load_bundle(bundle_copy)


def test_scorer_selection_reports_a_broken_bundle_as_a_scorer_error(bundle_copy: Path) -> None:
    # The worker reports ScorerErrors as "what to do" messages and exits for an operator.
    (bundle_copy / "tokenizer.json").unlink()
    settings = Settings(_env_file=None, scorer="onnx", bundle_dir=bundle_copy)  # type: ignore[call-arg]
    with pytest.raises(ScorerError, match=r"missing file tokenizer\.json"):
        load_scorer(settings)
