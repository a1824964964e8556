"""The production scorer: a model bundle run by ONNX Runtime (CPU INT8, or CUDA FP16).

Per call: tokenize with the bundle's ``tokenizer.json`` (truncating each text to its
source's length from the manifest), sort rows by token length, run one session call per
length bucket (16/32/64/128...), each padded to its own longest row rather than to the
batch's longest, and put the probabilities back in input order. Only TensorRT, which
builds an engine per input shape, pads up to the bucket boundary, so that shapes stay
few. No torch on this path.

INT8 variants are dynamically quantized: ONNX Runtime computes each activation's scale
from the whole tensor of a call, so in a shared call a text's scores depend on the other
texts (labels changed when real news was scored in other batch compositions:
docs/BENCHMARKS.md). By default each of their texts gets a call of its own
(``int8_rows_alone``): its scores are then a function of its text alone, bit for bit, and
a replay gives the labels the first attempt gave.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamer.bundle.errors import BundleError
from streamer.bundle.load import Bundle, load_bundle
from streamer.bundle.manifest import Device
from streamer.bundle.tokenize import (
    DEFAULT_BUCKETS,
    SourceTokenizers,
    bucketed_batches,
    pad_batch,
    plain_batches,
)
from streamer.schemas.events import ModelRef
from streamer.score.base import BatchScores, Source, warmup_batches


def cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


Provider = str | tuple[str, dict[str, str]]
_SHORT = {"TensorrtExecutionProvider": "tensorrt", "CUDAExecutionProvider": "cuda",
          "CPUExecutionProvider": "cpu"}


def execution_providers(device: Device, available: Sequence[str], *, tensorrt: bool = True,
                        trt_cache: Path | None = None) -> list[Provider]:
    """ONNX Runtime providers, best first: TensorRT (FP16, engines cached; one per bucketed
    shape, so few) when present and wanted, then CUDA, always CPU as the fallback."""
    out: list[Provider] = []
    if device == "cuda":
        if tensorrt and "TensorrtExecutionProvider" in available:
            opts = {"trt_fp16_enable": "True"}
            if trt_cache is not None:
                opts |= {"trt_engine_cache_enable": "True",
                         "trt_engine_cache_path": str(trt_cache)}
            out.append(("TensorrtExecutionProvider", opts))
        if "CUDAExecutionProvider" in available:
            out.append("CUDAExecutionProvider")
    out.append("CPUExecutionProvider")
    return out


class OnnxScorer:
    """Implements :class:`streamer.score.base.Scorer` over a bundle directory.

    ``variant='auto'`` takes the manifest's CUDA default (FP16) when onnxruntime has CUDA,
    else its CPU default (an INT8 student). ``max_group`` bounds one session call's rows
    (1 for an INT8 variant with ``int8_rows_alone``, see the module's docstring);
    ``max_tokens`` > 0 bounds its padded tokens instead (rows x padded length: batching by
    tokens, what a GPU call costs), except for a variant scored one row per call.
    ``bucketing=False`` pads each slice of the input to its longest row instead (the
    benchmark's baseline). ``pad_to_bucket``: pad each group up to its bucket boundary
    (default: only under TensorRT; elsewhere any shape costs nothing extra, padding does).
    """

    def __init__(
        self,
        bundle_dir: Path | str,
        variant: str = "auto",
        intra_op_threads: int = 1,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
        max_group: int = 64,
        max_tokens: int = 0,
        bucketing: bool = True,
        tensorrt: bool = True,
        trt_cache: Path | None = None,
        pad_to_bucket: bool | None = None,
        int8_rows_alone: bool = True,
    ) -> None:
        # Cheap checks on everything first; the sha of the chosen variant once it is known.
        bundle = load_bundle(bundle_dir, verify=())
        has_cuda = cuda_available()
        info = bundle.choose_variant(variant, "cuda" if has_cuda else "cpu")
        bundle = load_bundle(bundle_dir, verify=(info.name,))
        # CUDA only for variants built for it; an FP16 variant still runs (slowly) on CPU.
        device: Device = "cuda" if has_cuda and info.device == "cuda" else "cpu"
        import onnxruntime as ort

        providers = execution_providers(device, ort.get_available_providers(),
                                        tensorrt=tensorrt, trt_cache=trt_cache)
        self._bundle: Bundle = bundle
        self.variant = info.name
        self._model = ModelRef(bundle_id=bundle.id, bundle=bundle.manifest.name,
                               variant=info.name)
        self.device: Device = device
        self._session = bundle.open_session(info.name, providers, intra_op_threads)
        # The provider that actually runs (TensorRT or CUDA can fail to initialise).
        self.provider = _SHORT.get(self._session.get_providers()[0], "other")
        manifest = bundle.manifest
        self._tokenizers = SourceTokenizers(bundle.tokenizer_path, manifest.max_length)
        self._tokenizers.pad_id = manifest.pad_token_id
        max_len = max(manifest.max_length.values())
        # Buckets beyond the longest truncation never occur; keep the list tight.
        self._buckets = (*(b for b in buckets if b < max_len), max_len)
        # Dynamic INT8: one text per call, so that its scores depend on it alone.
        self.rows_alone = int8_rows_alone and info.precision == "int8"
        self._max_group = 1 if self.rows_alone else max_group
        # By tokens replaces the row cap; one row per call stays one row per call.
        self._max_tokens = max_tokens if max_tokens > 0 and not self.rows_alone else None
        self._bucketing = bucketing
        self._pad_to_bucket = (self.provider == "tensorrt" if pad_to_bucket is None
                               else pad_to_bucket)
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._sentiment = manifest.head("sentiment")
        self._topic = manifest.head("topic")
        self._outputs = [self._sentiment.output, self._topic.output]

    @property
    def name(self) -> str:
        return f"onnx-{self.provider}:{self.variant}"

    @property
    def bundle(self) -> Bundle:
        return self._bundle

    @property
    def model(self) -> ModelRef:
        return self._model

    @property
    def sentiment_labels(self) -> tuple[str, ...]:
        return tuple(self._sentiment.labels)

    @property
    def topic_labels(self) -> tuple[str, ...]:
        return tuple(self._topic.labels)

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        if len(texts) != len(sources):
            raise ValueError("texts and sources differ in length")
        n = len(texts)
        sentiment = np.zeros((n, len(self._sentiment.labels)), dtype=np.float32)
        topic = np.zeros((n, len(self._topic.labels)), dtype=np.float32)
        t0 = time.perf_counter()
        ids = self._tokenizers.encode(texts, sources)
        t1 = time.perf_counter()
        padded = calls = 0
        groups = (bucketed_batches(ids, self._buckets,
                                   None if self._max_tokens else self._max_group,
                                   self._max_tokens) if self._bucketing
                  else plain_batches(ids, self._max_group))
        for rows, bucket in groups:
            group = [ids[i] for i in rows]
            length = bucket if self._pad_to_bucket else max(len(r) for r in group)
            input_ids, mask = pad_batch(group, length, self._tokenizers.pad_id)
            padded += input_ids.size
            calls += 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            sent, top = self._session.run(self._outputs, feed)
            sentiment[rows] = sent
            topic[rows] = top
        t2 = time.perf_counter()
        tokens = sum(len(s) for s in ids)
        return BatchScores(
            sentiment_labels=self.sentiment_labels,
            topic_labels=self.topic_labels,
            sentiment=sentiment,
            topic=topic,
            tokenize_s=t1 - t0,
            infer_s=t2 - t1,
            extra={"tokens": float(tokens), "padded_tokens": float(padded),
                   "calls": float(calls)},
        )

    def warmup(self) -> None:
        for texts, sources in warmup_batches(self._buckets):
            self.score(texts, sources)


__all__ = ["BundleError", "OnnxScorer", "cuda_available"]
