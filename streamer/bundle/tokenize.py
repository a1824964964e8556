"""Tokenization shared by training and serving, so both see exactly the same ids.

Uses only the ``tokenizers`` library (no torch, no transformers): the bundle carries the
``tokenizer.json`` and the worker rebuilds the same tokenizer from it. One tokenizer per
truncation length is kept because a ``Tokenizer``'s truncation is mutable state and the
scorer is called from several threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

# Sequence lengths the scorer pads to: a batch of short chat lines pays for 16 or 32
# positions, not for the longest news item that happened to share its batch.
DEFAULT_BUCKETS: tuple[int, ...] = (16, 32, 64, 128, 256, 512)


def load_tokenizer(source: str | Path, max_length: int) -> Tokenizer:
    """A tokenizer from a ``tokenizer.json`` path (or its JSON text) truncating to ``max_length``.

    Padding in the file is switched off: callers pad to bucket boundaries themselves.
    """
    text = str(source)
    tok = Tokenizer.from_str(text) if text.lstrip().startswith("{") else Tokenizer.from_file(text)
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return tok


class SourceTokenizers:
    """One truncating tokenizer per source (``chat``, ``news``...), built once, never mutated."""

    def __init__(self, tokenizer_json: str | Path, max_lengths: Mapping[str, int]) -> None:
        if not max_lengths:
            raise ValueError("max_lengths needs at least one source")
        text = Path(tokenizer_json).read_text("utf-8") if _is_path(tokenizer_json) else str(
            tokenizer_json
        )
        self.max_lengths = dict(max_lengths)
        by_len: dict[int, Tokenizer] = {}
        for length in set(self.max_lengths.values()):
            by_len[length] = load_tokenizer(text, length)
        self._tok = {src: by_len[n] for src, n in self.max_lengths.items()}
        # Unknown sources fall back to the longest truncation: never cut more than needed.
        self._fallback = by_len[max(by_len)]
        self.pad_id = _pad_id(self._fallback)

    def encode(self, texts: Sequence[str], sources: Sequence[str]) -> list[list[int]]:
        """Token ids per text (with special tokens), truncated per its source, in input order."""
        if len(texts) != len(sources):
            raise ValueError("texts and sources differ in length")
        out: list[list[int]] = [[] for _ in texts]
        groups: dict[str, list[int]] = {}
        for i, src in enumerate(sources):
            groups.setdefault(src, []).append(i)
        for src, idx in groups.items():
            tok = self._tok.get(src, self._fallback)
            encs = tok.encode_batch([texts[i] for i in idx])
            for i, enc in zip(idx, encs, strict=True):
                out[i] = enc.ids
        return out


def _is_path(value: str | Path) -> bool:
    return isinstance(value, Path) or not str(value).lstrip().startswith("{")


def _pad_id(tok: Tokenizer) -> int:
    for name in ("[PAD]", "<pad>", "<PAD>"):
        tid = tok.token_to_id(name)
        if tid is not None:
            return int(tid)
    return 0


def bucket_length(n: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> int:
    """Smallest bucket boundary >= n (n itself beyond the last boundary)."""
    for b in buckets:
        if n <= b:
            return b
    return n


def pad_batch(
    ids: Sequence[Sequence[int]], length: int, pad_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(input_ids, attention_mask)`` int64 arrays of shape (len(ids), length)."""
    input_ids = np.full((len(ids), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), length), dtype=np.int64)
    for row, seq in enumerate(ids):
        n = min(len(seq), length)
        input_ids[row, :n] = seq[:n]
        mask[row, :n] = 1
    return input_ids, mask


def bucketed_batches(
    ids: Sequence[Sequence[int]],
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    max_batch: int | None = None,
    max_tokens: int | None = None,
) -> list[tuple[np.ndarray, int]]:
    """Group row indices by bucket length: ``[(row_indices, padded_length), ...]``.

    Rows are sorted by token length first, so each group pads only to its own bucket.
    ``max_batch`` caps a group's rows; ``max_tokens`` caps its padded tokens (rows x the
    bucket length; a row longer than that still gets a group of its own). By tokens, a
    group of short chat lines holds many more rows than one of long news items, for about
    the same cost per call: what a GPU's batch is sized by (its time and memory grow with
    the padded tokens, not the rows).
    """
    order = np.argsort([len(s) for s in ids], kind="stable")
    groups: list[tuple[np.ndarray, int]] = []
    current: list[int] = []
    current_len = -1
    for i in order:
        b = bucket_length(len(ids[i]), buckets)
        full = ((max_batch is not None and len(current) >= max_batch)
                or (max_tokens is not None and (len(current) + 1) * b > max_tokens))
        if current and (b != current_len or full):
            groups.append((np.asarray(current, dtype=np.int64), current_len))
            current = []
        current.append(int(i))
        current_len = b
    if current:
        groups.append((np.asarray(current, dtype=np.int64), current_len))
    return groups


def plain_batches(ids: Sequence[Sequence[int]], max_batch: int | None = None
                  ) -> list[tuple[np.ndarray, int]]:
    """Input order, each slice padded to its own longest row (``padding=True``): the
    unbucketed baseline that :func:`bucketed_batches` is measured against."""
    step = max_batch or max(1, len(ids))
    return [(np.arange(i, min(i + step, len(ids)), dtype=np.int64),
             max(len(s) for s in ids[i:i + step]))
            for i in range(0, len(ids), step)]
