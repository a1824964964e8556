"""The PyTorch scorer: call planning and the graph cache (pure python), the eager CPU path
against ONNX Runtime on the tiny bundle, and (on a GPU only) FP16 CUDA graphs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.score.base import ScorerError, Source
from streamer.score.torch_scorer import (
    Call,
    GraphCache,
    TorchScorer,
    fill_batch,
    plan_calls,
)

LENGTHS = (16, 32, 64, 128)
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)

TEXTS: list[tuple[str, Source]] = [
    ("$TSLA to the moon!!! 🚀", "chat"),
    ("Fed raises rates by 25bp; stocks fall as bond yields climb to a fresh high for the year "
     "amid inflation worries and weak guidance from several large banks.", "news"),
    ("lol", "chat"),
    ("ugh my puts are dead, rate cut hopes gone", "chat"),
    ("Oil prices rose on Monday after OPEC agreed to extend output cuts through the end of "
     "next year, analysts said, while the dollar slipped against the yen.", "news"),
    ("Acme Corp agrees to buy Widget Inc for $4.2 billion in cash", "news"),
    ("wheat futures limit up again, drought in the plains", "chat"),
    ("Quarterly earnings beat estimates; revenue up 12% on strong cloud demand", "news"),
    ("container rates from Shanghai doubled this month", "chat"),
    ("EUR/USD breaks 1.10 after ECB comments", "chat"),
    ("Exports fell 3% as new tariffs hit shipments of steel and aluminium to the US", "news"),
    ("buying the dip on $NVDA", "chat"),
]


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _bucket(n: int, buckets: tuple[int, ...]) -> int:
    return min(b for b in buckets if b >= n)


# --- plan_calls ------------------------------------------------------------------------------


def test_plan_calls_groups_by_length_and_pads_batches() -> None:
    lengths = [3, 20, 5, 40, 17, 2, 16]
    calls = plan_calls(lengths, (16, 32, 48), (1, 2, 4, 8))
    assert calls == [
        Call(rows=(5, 0, 2, 6), batch=4, length=16),
        Call(rows=(4, 1), batch=2, length=32),
        Call(rows=(3,), batch=1, length=48),
    ]
    assert [c.dummies for c in calls] == [0, 0, 0]


def test_plan_calls_chunks_big_groups_full_first() -> None:
    calls = plan_calls([10] * 11, LENGTHS, (1, 2, 4))
    assert [(len(c.rows), c.batch) for c in calls] == [(4, 4), (4, 4), (3, 4)]
    assert calls[-1].dummies == 1
    assert calls[0].key == (4, 16)


def test_plan_calls_edges() -> None:
    assert plan_calls([], LENGTHS, BATCHES) == []
    with pytest.raises(ValueError, match="largest length bucket"):
        plan_calls([129], LENGTHS, BATCHES)
    with pytest.raises(ValueError, match="batch buckets"):
        plan_calls([3], LENGTHS, [0, 4])


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 128), max_size=300),
    length_buckets=st.sets(st.sampled_from(LENGTHS[:-1]), max_size=3),
    batch_buckets=st.sets(st.sampled_from(BATCHES), min_size=1),
)
def test_plan_calls_properties(
    lengths: list[int], length_buckets: set[int], batch_buckets: set[int]
) -> None:
    lbs = tuple(sorted(length_buckets | {128}))  # the last bucket covers every length
    bbs = tuple(sorted(batch_buckets))
    calls = plan_calls(lengths, lbs, bbs)
    seen = [i for c in calls for i in c.rows]
    assert sorted(seen) == list(range(len(lengths)))  # every row exactly once
    for c in calls:
        assert 1 <= len(c.rows) <= bbs[-1]
        assert c.batch in bbs and c.batch >= len(c.rows)
        assert c.batch == _bucket(len(c.rows), bbs)  # the smallest bucket that fits
        assert c.length in lbs
        assert all(_bucket(lengths[i], lbs) == c.length for i in c.rows)
        assert [lengths[i] for i in c.rows] == sorted(lengths[i] for i in c.rows)
    # Only the last chunk of a length group may be short: no needless extra calls.
    for length in {c.length for c in calls}:
        sizes = [len(c.rows) for c in calls if c.length == length]
        assert all(s == bbs[-1] for s in sizes[:-1])


def test_fill_batch_writes_rows_then_dummies() -> None:
    ids = np.empty((4, 5), dtype=np.int64)
    mask = np.empty((4, 5), dtype=np.int64)
    fill_batch([[101, 7, 102], [101, 8, 9, 10, 11, 102]], ids, mask, pad_id=0)
    assert ids.tolist() == [[101, 7, 102, 0, 0], [101, 8, 9, 10, 11], [0] * 5, [0] * 5]
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1] * 5, [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]]


# --- GraphCache ------------------------------------------------------------------------------


def test_graph_cache_captures_once_per_key_and_evicts_lru() -> None:
    captured: list[tuple[int, int]] = []

    def capture(b: int, length: int) -> str:
        captured.append((b, length))
        return f"g{b}x{length}"

    cache: GraphCache[str] = GraphCache(capture, max_graphs=2)
    assert cache.get((1, 16)) == "g1x16"
    assert cache.get((1, 16)) == "g1x16"
    assert cache.get((2, 16)) == "g2x16"
    assert (cache.hits, cache.misses, cache.evictions) == (1, 2, 0)
    cache.get((1, 16))  # now (2, 16) is the least recently used
    cache.get((4, 32))
    assert cache.keys() == [(1, 16), (4, 32)]
    assert (2, 16) not in cache and len(cache) == 2
    assert (cache.hits, cache.misses, cache.evictions) == (2, 3, 1)
    cache.get((2, 16))  # captured again after its eviction
    assert captured == [(1, 16), (2, 16), (4, 32), (2, 16)]
    assert cache.evictions == 2 and cache.keys() == [(4, 32), (2, 16)]


def test_graph_cache_failed_capture_leaves_it_unchanged() -> None:
    def capture(b: int, length: int) -> int:
        raise RuntimeError("capture failed")

    cache: GraphCache[int] = GraphCache(capture, max_graphs=1)
    with pytest.raises(RuntimeError):
        cache.get((1, 16))
    assert len(cache) == 0 and cache.misses == 1
    with pytest.raises(ValueError):
        GraphCache(capture, max_graphs=0)


def test_module_imports_without_torch() -> None:
    # The CPU worker must be able to import the scorer modules without paying for torch.
    code = (
        "import sys; import streamer.score.torch_scorer, streamer.score.select; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the scorer on the tiny bundle -------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_scorer(tiny_bundle: Path) -> TorchScorer:
    return TorchScorer.from_bundle(tiny_bundle, device="cpu")


@pytest.fixture(scope="module")
def onnx_teacher(tiny_bundle: Path) -> object:
    from streamer.score.onnx_scorer import OnnxScorer

    return OnnxScorer(tiny_bundle, variant="teacher-fp32")


def _split(items: list[tuple[str, Source]]) -> tuple[list[str], list[Source]]:
    return [t for t, _ in items], [s for _, s in items]


def test_cpu_scorer_identity(cpu_scorer: TorchScorer, tiny_bundle: Path) -> None:
    from streamer.bundle.load import load_bundle

    manifest = load_bundle(tiny_bundle, verify=()).manifest
    assert cpu_scorer.name == "torch-cpu:teacher-fp32"
    assert not cpu_scorer.cuda_graphs
    assert cpu_scorer.sentiment_labels == tuple(manifest.head("sentiment").labels)
    assert cpu_scorer.topic_labels == tuple(manifest.head("topic").labels)
    assert cpu_scorer.length_buckets[-1] == max(manifest.max_length.values())


def test_cpu_scorer_agrees_with_onnx_in_input_order(
    cpu_scorer: TorchScorer, onnx_teacher: object
) -> None:
    texts, sources = _split(TEXTS)
    got = cpu_scorer.score(texts, sources)
    want = onnx_teacher.score(texts, sources)  # type: ignore[attr-defined]
    np.testing.assert_allclose(got.sentiment, want.sentiment, atol=1e-3)
    np.testing.assert_allclose(got.topic, want.topic, atol=1e-3)
    assert got.extra["tokens"] == want.extra["tokens"]
    assert got.tokenize_s > 0 and got.infer_s > 0
    # A reversed input gives reversed rows: results follow the input, not the plan.
    back = cpu_scorer.score(texts[::-1], sources[::-1])
    np.testing.assert_allclose(back.sentiment, got.sentiment[::-1], atol=1e-5)
    np.testing.assert_allclose(back.topic, got.topic[::-1], atol=1e-5)


def test_dummy_rows_are_computed_and_dropped(
    cpu_scorer: TorchScorer, onnx_teacher: object
) -> None:
    texts = ["lol", "buy buy buy", "rates up again", "$AMD earnings tonight", "oil down 3%"]
    sources: list[Source] = ["chat"] * 5
    got = cpu_scorer.score(texts, sources)
    assert got.sentiment.shape == (5, len(cpu_scorer.sentiment_labels))
    assert got.topic.shape == (5, len(cpu_scorer.topic_labels))
    assert got.extra["calls"] == 1 and got.extra["dummy_rows"] == 3  # 5 rows -> bucket 8
    assert got.extra["padded_tokens"] == 8 * 16
    want = onnx_teacher.score(texts, sources)  # type: ignore[attr-defined]
    np.testing.assert_allclose(got.sentiment, want.sentiment, atol=1e-3)
    np.testing.assert_allclose(got.topic, want.topic, atol=1e-3)


def test_many_chunks_per_bucket_keep_their_rows(
    tiny_bundle: Path, cpu_scorer: TorchScorer
) -> None:
    small = TorchScorer.from_bundle(tiny_bundle, device="cpu", batch_buckets=(1, 2, 4))
    texts, sources = _split(TEXTS * 2)
    got = small.score(texts, sources)
    want = cpu_scorer.score(texts, sources)
    assert got.extra["calls"] > want.extra["calls"]
    np.testing.assert_allclose(got.sentiment, want.sentiment, atol=1e-4)
    np.testing.assert_allclose(got.topic, want.topic, atol=1e-4)


class _NoEvent:
    """Stands in for torch.cuda.Event on CPU."""

    def record(self) -> None: ...

    def synchronize(self) -> None: ...


def _stand_in_graphs(scorer: TorchScorer, max_graphs: int) -> list[tuple[int, int]]:
    """Route ``scorer`` through its graph path with CPU stand-ins for captured graphs: a
    replay runs the forward pass on the static inputs into the static outputs, as a CUDA
    graph does. Returns the list of captured keys."""
    import torch

    from streamer.score.torch_scorer import _Graph

    captured: list[tuple[int, int]] = []

    def capture(batch: int, length: int) -> _Graph:
        captured.append((batch, length))
        ids = torch.zeros((batch, length), dtype=torch.int64)
        mask = torch.ones_like(ids)
        sent, top = scorer._forward(ids, mask)
        entry = _Graph(graph=None, ids=ids, mask=mask, host_ids=torch.empty_like(ids),
                       host_mask=torch.empty_like(ids), sentiment=sent, topic=top,
                       copied=_NoEvent())

        class Replay:
            def replay(self) -> None:
                s, t = scorer._forward(entry.ids, entry.mask)
                entry.sentiment.copy_(s)
                entry.topic.copy_(t)

        entry.graph = Replay()
        return entry

    scorer.cuda_graphs = True
    scorer.graphs = GraphCache(capture, max_graphs=max_graphs)
    return captured


def test_graph_path_with_stand_in_graphs(tiny_bundle: Path, cpu_scorer: TorchScorer) -> None:
    scorer = TorchScorer.from_bundle(tiny_bundle, device="cpu", batch_buckets=(1, 2, 4))
    texts, sources = _split(TEXTS * 2)
    want = cpu_scorer.score(texts, sources)
    # A tiny cache: shapes are evicted and captured again, one graph replays several times.
    captured = _stand_in_graphs(scorer, max_graphs=2)
    got = scorer.score(texts, sources)
    np.testing.assert_allclose(got.sentiment, want.sentiment, atol=1e-4)
    np.testing.assert_allclose(got.topic, want.topic, atol=1e-4)
    assert got.extra["graph_misses"] == len(captured) >= 3
    assert got.extra["graph_hits"] + got.extra["graph_misses"] == got.extra["calls"]
    assert scorer.graphs.evictions >= 1 and len(scorer.graphs) == 2
    # A roomy cache: the second call replays only.
    captured = _stand_in_graphs(scorer, max_graphs=64)
    scorer.score(texts, sources)
    again = scorer.score(texts, sources)
    assert again.extra["graph_misses"] == 0
    assert again.extra["graph_hits"] == again.extra["calls"]
    assert len(captured) == len(scorer.graphs)  # each shape captured once
    np.testing.assert_allclose(again.sentiment, want.sentiment, atol=1e-4)


def test_empty_batch_and_mismatched_sources(cpu_scorer: TorchScorer) -> None:
    out = cpu_scorer.score([], [])
    assert out.sentiment.shape == (0, len(cpu_scorer.sentiment_labels))
    assert out.extra["calls"] == 0
    with pytest.raises(ValueError):
        cpu_scorer.score(["a"], [])


def test_from_bundle_without_checkpoint_names_the_fix(bundle_copy: Path) -> None:
    with pytest.raises(ScorerError) as err:
        TorchScorer.from_bundle(bundle_copy, device="cpu")
    msg = str(err.value)
    assert "_work/models/teacher" in msg
    assert f"streamer models build --profile full --out {bundle_copy}" in msg
    assert "STREAMER_SCORER=onnx" in msg


def test_load_scorer_picks_torch_from_settings(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamer.score.select import load_scorer
    from streamer.settings import Settings

    monkeypatch.setenv("STREAMER_SCORER", "torch")
    monkeypatch.setenv("STREAMER_TORCH_DEVICE", "cpu")
    monkeypatch.setenv("STREAMER_TORCH_MAX_GRAPHS", "8")
    monkeypatch.setenv("STREAMER_BUNDLE_DIR", str(tiny_bundle))
    scorer = load_scorer(Settings(_env_file=None))  # type: ignore[call-arg]
    assert scorer.name == "torch-cpu:teacher-fp32"
    assert isinstance(scorer, TorchScorer) and scorer.graphs.max_graphs == 8


# --- CUDA --------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU (torch.cuda.is_available())")
def test_cuda_graphs_fp16_agree_with_cpu_and_hit_the_cache(
    tiny_bundle: Path, cpu_scorer: TorchScorer
) -> None:
    gpu = TorchScorer.from_bundle(tiny_bundle, device="cuda")
    assert gpu.name == "torch-cuda:teacher-fp16-graphs"
    gpu.warmup()
    assert len(gpu.graphs) > 0 and gpu.graphs.misses == len(gpu.graphs)
    texts, sources = _split(TEXTS)
    want = cpu_scorer.score(texts, sources)
    first = gpu.score(texts, sources)
    assert first.extra["graph_misses"] == 0  # warmup captured every shape this batch needs
    np.testing.assert_allclose(first.sentiment, want.sentiment, atol=2e-2)
    np.testing.assert_allclose(first.topic, want.topic, atol=2e-2)
    for head in ("sentiment", "topic"):
        agree = np.mean(getattr(first, head).argmax(1) == getattr(want, head).argmax(1))
        assert agree >= 0.9, (head, agree)
    again = gpu.score(texts, sources)
    assert again.extra["graph_hits"] == again.extra["calls"] > 0
    assert again.extra["graph_misses"] == 0
    np.testing.assert_allclose(again.sentiment, first.sentiment, atol=1e-6)

    # Several replays of one graph in one call, and LRU eviction with a tiny cache.
    small = TorchScorer.from_bundle(
        tiny_bundle, device="cuda", batch_buckets=(1, 2, 4), max_graphs=2
    )
    texts2, sources2 = _split(TEXTS * 2)
    got = small.score(texts2, sources2)
    ref = cpu_scorer.score(texts2, sources2)
    np.testing.assert_allclose(got.sentiment, ref.sentiment, atol=2e-2)
    np.testing.assert_allclose(got.topic, ref.topic, atol=2e-2)
    assert len(small.graphs) <= 2 and small.graphs.evictions >= 1
