"""`streamer bench models` on the tiny bundle: every path measured on the same texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.bench import models as mb
from streamer.score.onnx_scorer import OnnxScorer

TEXTS = [
    "ugh, $AAPL guidance is a disaster",
    "Oil prices rose on Tuesday after OPEC agreed to extend output cuts. " * 8,
    "ok",
    "XYZ Corp said it agreed to acquire ABC Inc for 1.2 billion dollars in cash.",
    "$TSLA to the moon!!",
]
SOURCES = ["chat", "news", "chat", "news", "chat"]


def test_padding_to_the_batch_or_to_buckets_gives_the_same_scores_in_input_order(
    tiny_bundle: Path,
) -> None:
    bucketed = OnnxScorer(tiny_bundle, variant="teacher-fp32").score(TEXTS, SOURCES)
    plain = OnnxScorer(tiny_bundle, variant="teacher-fp32", bucketing=False).score(
        TEXTS, SOURCES)
    one_by_one = [OnnxScorer(tiny_bundle, variant="teacher-fp32").score([t], [s])
                  for t, s in zip(TEXTS, SOURCES, strict=True)]
    np.testing.assert_allclose(plain.sentiment, bucketed.sentiment, atol=1e-4)
    np.testing.assert_allclose(plain.topic, bucketed.topic, atol=1e-4)
    np.testing.assert_allclose(np.vstack([o.sentiment for o in one_by_one]),
                               bucketed.sentiment, atol=1e-4)


def test_the_benchmark_runs_every_path_over_the_same_validation_texts(
    tiny_bundle: Path, tmp_path: Path,
) -> None:
    examples = mb.sample(tiny_bundle, 24)
    result = mb.run(tiny_bundle, examples, threads=1, batches=(1, 8), naive_texts=4, rounds=2)
    paths = {c.path for c in result.cells}
    # naive, teacher, student padded, bucketed in shared calls, and one text per call
    assert mb.NAIVE in paths and len(paths) == 5
    naive = next(c for c in result.cells if c.path == mb.NAIVE)
    assert naive.batch == 1 and naive.messages == 4 and naive.speedup == 1.0
    for c in result.cells:
        if c.path != mb.NAIVE:
            assert c.messages == 24 and c.batch in (1, 8)
            # The engine's own split of each call: model time within the call's time.
            assert c.tokenize_share is not None and 0 < c.tokenize_share < 1
            assert c.infer_p99_ms is not None and 0 < c.infer_p99_ms <= c.p99_ms
        assert c.msgs_per_s > 0 and 0 < c.p50_ms <= c.p99_ms and c.speedup is not None
    assert naive.tokenize_share is None  # transformers does not report the split
    assert any("no CUDA GPU" in n for n in result.notes)  # GPU rows say why they are absent
    assert any("2 interleaved rounds" in n for n in result.notes)
    assert result.texts == 24 and 0 < result.chat_share < 1 and result.mean_tokens > 2
    md, js = mb.write(result, tmp_path)
    assert "| student ONNX INT8, one text per call (deployed) | student2-int8 | 8 |" in (
        md.read_text())
    assert mb.ModelBench.model_validate_json(js.read_text()) == result
