"""The baseline scorer: multinomial Naive Bayes over hashed word uni+bigrams.

A real, simple model trained in seconds from the labelled data, so the pipeline
runs end to end before (or without) a neural bundle. It is clearly worse than the
compressed transformer models and is named ``baseline-nb`` wherever it reports.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
import time
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from streamer.atomic import atomic_file
from streamer.schemas.events import ModelRef
from streamer.score.base import BatchScores, ScorerError, Source
from streamer.taxonomy import r8_label_map

_TOKEN = re.compile(r"[a-z0-9$][a-z0-9$'&.\-]*[a-z0-9]|[a-z0-9$]")
_BITS = 18
_ALPHA = 0.5
SENTIMENT_FILES = ("tfn-sentiment/train.csv", "phrasebank/train.csv")
# The topic head speaks the TFN taxonomy, as the bundles do: R8 stories through its mapping.
TOPIC_FILES = ("tfn-topic/train.csv", "reuters-topics/train.csv")


def features(text: str) -> np.ndarray:
    """Hashed ids of lowercase unigrams and bigrams (stable across processes: crc32)."""
    words = _TOKEN.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    mask = (1 << _BITS) - 1
    return np.fromiter((zlib.crc32(g.encode()) & mask for g in grams), np.int64, len(grams))


class NaiveBayesHead:
    def __init__(self, labels: tuple[str, ...], log_prior: np.ndarray, log_lik: np.ndarray):
        self.labels = labels
        self.log_prior = log_prior
        self.log_lik = log_lik  # (classes, 2**_BITS) float32

    @classmethod
    def fit(cls, rows: Iterable[tuple[str, str]]) -> NaiveBayesHead:
        texts, labels = zip(*rows, strict=True)
        names = tuple(sorted(set(labels)))
        index = {n: i for i, n in enumerate(names)}
        counts = np.zeros((len(names), 1 << _BITS), np.float64)
        prior = np.zeros(len(names))
        for text, label in zip(texts, labels, strict=True):
            i = index[label]
            prior[i] += 1
            np.add.at(counts[i], features(text), 1.0)
        counts += _ALPHA
        log_lik = np.log(counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)
        return cls(names, np.log(prior / prior.sum()), log_lik)

    def predict_proba(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(feats), len(self.labels)), np.float32)
        for row, ids in enumerate(feats):
            logits = self.log_prior + self.log_lik[:, ids].sum(axis=1)
            logits -= logits.max()
            p = np.exp(logits)
            out[row] = p / p.sum()
        return out


def _read_csv(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [(r["text"], r["label"]) for r in csv.DictReader(fh) if r["text"] and r["label"]]


class BaselineScorer:
    """Implements :class:`streamer.score.base.Scorer`."""

    def __init__(self, sentiment: NaiveBayesHead, topic: NaiveBayesHead) -> None:
        if "negative" not in sentiment.labels:
            raise ScorerError("the sentiment data has no 'negative' label")
        self._sentiment = sentiment
        self._topic = topic
        # Its "bundle id" hashes the fitted parameters: same data, same id.
        digest = hashlib.sha256()
        for head in (sentiment, topic):
            digest.update("\0".join(head.labels).encode())
            digest.update(np.ascontiguousarray(head.log_prior).tobytes())
            digest.update(np.ascontiguousarray(head.log_lik).tobytes())
        self._model = ModelRef(bundle_id=digest.hexdigest()[:16], bundle="baseline-nb",
                               variant="naive-bayes")

    @property
    def name(self) -> str:
        return "baseline-nb"

    @property
    def model(self) -> ModelRef:
        return self._model

    @property
    def sentiment_labels(self) -> tuple[str, ...]:
        return self._sentiment.labels

    @property
    def topic_labels(self) -> tuple[str, ...]:
        return self._topic.labels

    @classmethod
    def train(cls, data_dir: Path, cache_dir: Path | None = None) -> BaselineScorer:
        """Fit both heads from ``data_dir``; cached by the data's content hash."""
        files = [data_dir / f for f in (*SENTIMENT_FILES, *TOPIC_FILES)]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ScorerError(
                f"labelled data not found: {', '.join(missing)}. "
                "Set STREAMER_LABELLED_DATA_DIR to the folder holding the shared data."
            )
        mapping = r8_label_map()
        digest = hashlib.sha256(json.dumps(mapping, sort_keys=True).encode())
        for f in files:
            digest.update(f.read_bytes())
        cached = cache_dir / f"baseline-{digest.hexdigest()[:16]}.npz" if cache_dir else None
        if cached is not None and cached.is_file():
            return cls.load(cached)
        sent = NaiveBayesHead.fit(
            row for f in SENTIMENT_FILES for row in _read_csv(data_dir / f)
        )
        topic = NaiveBayesHead.fit(
            (text, mapping.get(label, label) if f.startswith("reuters") else label)
            for f in TOPIC_FILES for text, label in _read_csv(data_dir / f)
        )
        scorer = cls(sent, topic)
        if cached is not None:
            scorer.save(cached)
        return scorer

    def save(self, path: Path) -> None:
        # Workers starting together may all train and save the same cache: each writes
        # its own temporary, and the last replace wins with an identical file.
        with atomic_file(path) as fh:
            np.savez(
                fh,
                s_labels=np.array(self._sentiment.labels),
                s_prior=self._sentiment.log_prior,
                s_lik=self._sentiment.log_lik,
                t_labels=np.array(self._topic.labels),
                t_prior=self._topic.log_prior,
                t_lik=self._topic.log_lik,
            )

    @classmethod
    def load(cls, path: Path) -> BaselineScorer:
        z = np.load(path)
        return cls(
            NaiveBayesHead(tuple(str(x) for x in z["s_labels"]), z["s_prior"], z["s_lik"]),
            NaiveBayesHead(tuple(str(x) for x in z["t_labels"]), z["t_prior"], z["t_lik"]),
        )

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        t0 = time.perf_counter()
        feats = [features(t) for t in texts]
        t1 = time.perf_counter()
        sentiment = self._sentiment.predict_proba(feats)
        topic = self._topic.predict_proba(feats)
        t2 = time.perf_counter()
        return BatchScores(
            self.sentiment_labels, self.topic_labels, sentiment, topic,
            tokenize_s=t1 - t0, infer_s=t2 - t1,
        )

    def warmup(self) -> None:
        self.score(["warm up"], ["chat"])
