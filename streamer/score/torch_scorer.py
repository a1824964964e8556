"""A PyTorch scorer: the bundle's training checkpoint on CUDA (FP16 + CUDA graphs) or CPU.

Per call: tokenize with the bundle's ``tokenizer.json`` (as :mod:`onnx_scorer` does), plan
the model calls with :func:`plan_calls` - rows sorted by token length, grouped by length
bucket, each group cut into chunks padded up to a *batch* bucket - so every call has one of
a few fixed shapes ``(B, L)``. On CUDA each shape is captured once as a CUDA graph (kept in
a bounded LRU :class:`GraphCache`) and replayed: no per-kernel launch overhead, which is
most of the cost of a small encoder at small batch sizes. The padded rows are dummies whose
outputs are dropped. On CPU (or ``cuda_graphs=False``) the same plan runs eagerly, so the
planning and ordering logic is tested on any machine.

torch is imported inside the functions: importing this module stays cheap and works
without the ``train`` extra (the CPU worker's ONNX path never pulls torch in).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import numpy as np

from streamer.bundle.manifest import CHECKPOINT_META, CHECKPOINT_SUBDIR, file_sha256
from streamer.bundle.tokenize import SourceTokenizers, bucket_length
from streamer.schemas.events import ModelRef
from streamer.score.base import BatchScores, ScorerError, Source, warmup_batches

if TYPE_CHECKING:
    import torch

    from streamer.network.heads import MultiTaskModel

GraphKey = tuple[int, int]
"""``(batch bucket B, length bucket L)``: the shape one CUDA graph is captured for."""

DeviceChoice = Literal["auto", "cuda", "cpu"]
Precision = Literal["fp16", "fp32"]
Attention = Literal["eager", "sdpa"]

DEFAULT_LENGTH_BUCKETS: tuple[int, ...] = (16, 32, 64, 128)
DEFAULT_BATCH_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# The PyTorch docs warm a callable up on a side stream for a few iterations before capture
# (lazy initialisation, cuBLAS workspaces, autotuning must not end up in the graph).
CAPTURE_WARMUP_ITERS = 3

Entry = TypeVar("Entry")


# --- planning (pure python) ----------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One model call: ``rows`` (input indices) padded to ``batch`` rows of ``length`` tokens.

    Rows ``len(rows)..batch-1`` are dummies: computed (a graph has a fixed shape) and dropped.
    """

    rows: tuple[int, ...]
    batch: int
    length: int

    @property
    def key(self) -> GraphKey:
        return (self.batch, self.length)

    @property
    def dummies(self) -> int:
        return self.batch - len(self.rows)


def check_buckets(buckets: Iterable[int], what: str) -> tuple[int, ...]:
    """Ascending, distinct, positive bucket boundaries (a ValueError otherwise)."""
    out = tuple(sorted(set(int(b) for b in buckets)))
    if not out or out[0] < 1:
        raise ValueError(f"{what} need at least one positive size, got {list(buckets)}")
    return out


def plan_calls(
    lengths: Sequence[int], length_buckets: Iterable[int], batch_buckets: Iterable[int]
) -> list[Call]:
    """Cut rows of the given token lengths into calls of bucketed shape ``(B, L)``.

    Rows are sorted by length (stable) and grouped by their length bucket ``L`` (smallest
    bucket >= the row's length); each group is cut into chunks of at most ``max(batch
    buckets)`` rows (full chunks first), and each chunk is padded up to the smallest batch
    bucket ``B`` >= its size. A length beyond the largest length bucket is a ValueError:
    the caller truncates first, so the set of shapes (graphs) stays bounded.
    """
    lbs = check_buckets(length_buckets, "length buckets")
    bbs = check_buckets(batch_buckets, "batch buckets")
    if lengths and max(lengths) > lbs[-1]:
        raise ValueError(
            f"a row of {max(lengths)} tokens is beyond the largest length bucket {lbs[-1]}; "
            "truncate to it first"
        )
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: dict[int, list[int]] = {}
    for i in order:  # ascending lengths -> groups (and calls) in ascending L
        groups.setdefault(bucket_length(lengths[i], lbs), []).append(i)
    step = bbs[-1]
    calls: list[Call] = []
    for length, rows in groups.items():  # every length is within lbs (checked above)
        for start in range(0, len(rows), step):
            chunk = tuple(rows[start:start + step])  # at most step = bbs[-1] rows
            calls.append(Call(chunk, bucket_length(len(chunk), bbs), length))
    return calls


def fill_batch(
    seqs: Sequence[Sequence[int]], input_ids: np.ndarray, mask: np.ndarray, pad_id: int
) -> None:
    """Write ``seqs`` into preallocated ``(B, L)`` int64 arrays, dummy rows after them.

    A dummy row is a single attended pad token: an all-zero mask would give a fully masked
    softmax (NaN with some attention kernels), and its outputs are dropped anyway.
    """
    input_ids.fill(pad_id)
    mask.fill(0)
    for row, seq in enumerate(seqs):
        n = min(len(seq), input_ids.shape[1])
        input_ids[row, :n] = seq[:n]
        mask[row, :n] = 1
    mask[len(seqs):, 0] = 1


# --- graph cache (pure python) -------------------------------------------------------------


@dataclass
class GraphCache(Generic[Entry]):
    """A bounded LRU of captured entries keyed by ``(B, L)``; ``capture`` makes a missing one.

    Bounded because each graph holds device memory for its static tensors and the set of
    shapes seen in production is small but open-ended (bucket settings can change). Not
    thread-safe on its own: the scorer serialises graph use with its lock.
    """

    capture: Callable[[int, int], Entry]
    max_graphs: int = 64
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    _entries: OrderedDict[GraphKey, Entry] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.max_graphs < 1:
            raise ValueError(f"max_graphs must be >= 1, got {self.max_graphs}")

    def get(self, key: GraphKey) -> Entry:
        """The entry for ``key``, captured on first use; the least recently used goes when full."""
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            self._entries.move_to_end(key)
            return entry
        self.misses += 1
        entry = self.capture(*key)  # a failed capture leaves the cache as it was
        self._entries[key] = entry
        while len(self._entries) > self.max_graphs:
            self._entries.popitem(last=False)
            self.evictions += 1
        return entry

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[GraphKey]:
        """Cached keys, least recently used first."""
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()


# --- torch helpers ---------------------------------------------------------------------------


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ScorerError(
            "the torch scorer needs PyTorch: pip install 'streamer[train]' (or a CUDA build "
            "of torch), or use STREAMER_SCORER=onnx"
        ) from exc
    return torch


def resolve_device(device: DeviceChoice) -> Literal["cuda", "cpu"]:
    """``auto``: CUDA when torch sees a GPU, else CPU. ``cuda`` without one is a ScorerError."""
    torch = _import_torch()
    has_cuda = bool(torch.cuda.is_available())
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise ScorerError(
            "torch device 'cuda' asked for but torch sees no CUDA GPU (torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda}); use STREAMER_TORCH_DEVICE="
            "cpu or auto, or install a CUDA build of torch"
        )
    if device not in ("cuda", "cpu"):
        raise ScorerError(f"unknown torch device {device!r}; use auto, cuda or cpu")
    return device


@dataclass
class _Graph:
    """One captured ``(B, L)`` graph with its static device tensors and pinned host buffers."""

    graph: Any  # torch.cuda.CUDAGraph
    ids: torch.Tensor
    mask: torch.Tensor
    host_ids: torch.Tensor
    host_mask: torch.Tensor
    sentiment: torch.Tensor
    topic: torch.Tensor
    copied: Any  # torch.cuda.Event: the last host->device copy out of the pinned buffers


@dataclass
class _CallStats:
    padded_tokens: int = 0
    dummy_rows: int = 0
    calls: int = 0


class TorchScorer:
    """Implements :class:`streamer.score.base.Scorer` over a PyTorch checkpoint directory.

    ``checkpoint_dir`` is what :func:`streamer.network.heads.save_model` writes (``encoder/``,
    heads, ``model.json``); tokenizer, truncation lengths, pad id and labels come from the
    bundle built with it (see :meth:`from_bundle`). ``precision`` defaults to FP16 on CUDA
    and FP32 on CPU; ``cuda_graphs`` defaults to on for CUDA (it needs CUDA). Length buckets
    beyond the longest truncation are dropped and that length is added as the last one.
    ``attention`` defaults to ``sdpa`` on CUDA (fused kernels, and its mask is built from
    device tensors only, while the eager mask creates a scalar from the host, a copy that
    graph capture may reject) and to ``eager`` on CPU (what the ONNX export runs).
    """

    def __init__(
        self,
        checkpoint_dir: Path | str,
        tokenizer_json: Path | str,
        max_length: Mapping[str, int],
        pad_id: int,
        sentiment_labels: Sequence[str] | None = None,
        topic_labels: Sequence[str] | None = None,
        *,
        device: DeviceChoice = "cuda",
        precision: Precision | None = None,
        cuda_graphs: bool | None = None,
        length_buckets: Sequence[int] = DEFAULT_LENGTH_BUCKETS,
        batch_buckets: Sequence[int] = DEFAULT_BATCH_BUCKETS,
        max_graphs: int = 64,
        warmup_max_batch: int = 64,
        attention: Attention | None = None,
        bundle: tuple[str, str] | None = None,
    ) -> None:
        torch = _import_torch()
        self._torch = torch
        self.device: Literal["cuda", "cpu"] = resolve_device(device)
        self.precision: Precision = precision or ("fp16" if self.device == "cuda" else "fp32")
        self.cuda_graphs = self.device == "cuda" if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and self.device != "cuda":
            raise ScorerError("CUDA graphs need device 'cuda'; set cuda_graphs=False on CPU")
        checkpoint = Path(checkpoint_dir).expanduser()
        self.model_name = checkpoint.name
        self._model, model_labels = _load_checkpoint(checkpoint)
        # ``bundle``: (id, name) of the bundle it comes from; a bare checkpoint is named by
        # its meta file's hash and its directory.
        bundle_id, bundle_name = bundle or (file_sha256(checkpoint / CHECKPOINT_META)[:16],
                                            checkpoint.name)
        self._ref = ModelRef(bundle_id=bundle_id, bundle=bundle_name,
                             variant=f"{self.model_name}-torch-{self.precision}")
        self._sentiment_labels = _check_labels(
            "sentiment", sentiment_labels, model_labels, checkpoint
        )
        self._topic_labels = _check_labels("topic", topic_labels, model_labels, checkpoint)
        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self.attention: Attention = attention or ("sdpa" if self.device == "cuda" else "eager")
        _set_attention(self._model.encoder, self.attention)
        self._model.to(device=self.device, dtype=dtype).eval()

        self._tokenizers = SourceTokenizers(tokenizer_json, max_length)
        self._tokenizers.pad_id = pad_id
        max_len = max(max_length.values())
        # Every row is truncated to max_len, so it is the last bucket and bounds the shapes.
        self.length_buckets = (
            *(b for b in check_buckets(length_buckets, "length buckets") if b < max_len),
            max_len,
        )
        self.batch_buckets = check_buckets(batch_buckets, "batch buckets")
        self._warmup_max_batch = warmup_max_batch
        self._lock = threading.Lock()  # graph replays share static buffers: one at a time
        self._pool: Any = None
        self._capture_stream: Any = None
        self.graphs: GraphCache[_Graph] = GraphCache(self._capture, max_graphs=max_graphs)
        if self.cuda_graphs:
            # One memory pool for all graphs: safe because replays never overlap (the lock)
            # and each replay's outputs are cloned before the next replay can reuse memory.
            self._pool = torch.cuda.graph_pool_handle()
            # Warm-up and capture on one side stream: per-stream library workspaces
            # (cuBLAS) then exist before capture starts.
            self._capture_stream = torch.cuda.Stream()

    # --- construction from a bundle ----------------------------------------------------------
    @classmethod
    def from_bundle(
        cls,
        bundle_dir: Path | str,
        model: str = "teacher",
        device: DeviceChoice = "auto",
        **options: Any,
    ) -> TorchScorer:
        """The checkpoint ``<bundle>/_work/models/<model>`` with the bundle's tokenizer,
        truncation, pad id and labels. ``options`` go to the constructor."""
        from streamer.bundle.load import load_bundle

        bundle = load_bundle(bundle_dir, verify=())
        checkpoint = checkpoint_path(bundle.path, model)
        if not (checkpoint / CHECKPOINT_META).is_file():
            raise ScorerError(missing_checkpoint_message(bundle.path, model))
        manifest = bundle.manifest
        return cls(
            checkpoint,
            bundle.tokenizer_path,
            manifest.max_length,
            manifest.pad_token_id,
            manifest.head("sentiment").labels,
            manifest.head("topic").labels,
            device=device,
            bundle=(bundle.id, manifest.name),
            **options,
        )

    # --- Scorer protocol ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        graphs = "-graphs" if self.cuda_graphs else ""
        return f"torch-{self.device}:{self.model_name}-{self.precision}{graphs}"

    @property
    def model(self) -> ModelRef:
        return self._ref

    @property
    def sentiment_labels(self) -> tuple[str, ...]:
        return self._sentiment_labels

    @property
    def topic_labels(self) -> tuple[str, ...]:
        return self._topic_labels

    def score(self, texts: Sequence[str], sources: Sequence[Source]) -> BatchScores:
        if len(texts) != len(sources):
            raise ValueError("texts and sources differ in length")
        n = len(texts)
        sentiment = np.zeros((n, len(self._sentiment_labels)), dtype=np.float32)
        topic = np.zeros((n, len(self._topic_labels)), dtype=np.float32)
        t0 = time.perf_counter()
        ids = self._tokenizers.encode(texts, sources)
        t1 = time.perf_counter()
        calls = plan_calls([len(s) for s in ids], self.length_buckets, self.batch_buckets)
        stats = _CallStats()
        graph_hits = graph_misses = 0
        if calls:
            with self._torch.inference_mode():
                if self.cuda_graphs:
                    with self._lock:
                        hits, misses = self.graphs.hits, self.graphs.misses
                        rows, sent, top = self._run_graphs(ids, calls, stats)
                        graph_hits = self.graphs.hits - hits
                        graph_misses = self.graphs.misses - misses
                else:
                    rows, sent, top = self._run_eager(ids, calls, stats)
            sentiment[rows] = sent
            topic[rows] = top
        t2 = time.perf_counter()
        return BatchScores(
            sentiment_labels=self._sentiment_labels,
            topic_labels=self._topic_labels,
            sentiment=sentiment,
            topic=topic,
            tokenize_s=t1 - t0,
            infer_s=t2 - t1,
            extra={
                "tokens": float(sum(len(s) for s in ids)),
                "padded_tokens": float(stats.padded_tokens),
                "dummy_rows": float(stats.dummy_rows),
                "calls": float(stats.calls),
                "graph_hits": float(graph_hits),
                "graph_misses": float(graph_misses),
                "graphs_cached": float(len(self.graphs)),
            },
        )

    def warmup(self) -> None:
        """CUDA graphs: capture the common shapes now (every length bucket, batch buckets up
        to ``warmup_max_batch``, at most ``max_graphs``) so no capture stalls a live batch.
        Then one real call per length bucket, as the ONNX scorer does."""
        if self.cuda_graphs:
            keys = [
                (b, length)
                for length in self.length_buckets
                for b in self.batch_buckets
                if b <= self._warmup_max_batch
            ][: self.graphs.max_graphs]
            with self._torch.inference_mode(), self._lock:
                for key in keys:
                    self.graphs.get(key)
        for texts, sources in warmup_batches(self.length_buckets):
            self.score(texts, sources)

    # --- execution -----------------------------------------------------------------------------
    def _forward(
        self, input_ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities per head; softmax in FP32 even for an FP16 model (near-ties matter)."""
        torch = self._torch
        logits = self._model(input_ids, mask)
        sent = torch.softmax(logits["sentiment"].float(), dim=-1)
        top = torch.softmax(logits["topic"].float(), dim=-1)
        return sent, top

    def _run_eager(
        self, ids: Sequence[Sequence[int]], calls: Sequence[Call], stats: _CallStats
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        th = self._torch  # not `torch`: that name is the module in the annotations
        on_cuda = self.device == "cuda"
        rows: list[int] = []
        sents: list[torch.Tensor] = []
        tops: list[torch.Tensor] = []
        for call in calls:
            host_ids = np.empty(call.key, dtype=np.int64)
            host_mask = np.empty(call.key, dtype=np.int64)
            fill_batch([ids[i] for i in call.rows], host_ids, host_mask, self._tokenizers.pad_id)
            t_ids, t_mask = th.from_numpy(host_ids), th.from_numpy(host_mask)
            if on_cuda:  # pinned so the copies are asynchronous
                t_ids = t_ids.pin_memory().to(self.device, non_blocking=True)
                t_mask = t_mask.pin_memory().to(self.device, non_blocking=True)
            sent, top = self._forward(t_ids, t_mask)
            self._account(call, stats)
            rows.extend(call.rows)
            sents.append(sent[: len(call.rows)])
            tops.append(top[: len(call.rows)])
        return _gather(rows, sents, tops)

    def _run_graphs(
        self, ids: Sequence[Sequence[int]], calls: Sequence[Call], stats: _CallStats
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows: list[int] = []
        sents: list[torch.Tensor] = []
        tops: list[torch.Tensor] = []
        for call in calls:
            g = self.graphs.get(call.key)
            # The same shape may come twice in one call: its pinned buffers may still be
            # feeding the previous copy.
            g.copied.synchronize()
            fill_batch(
                [ids[i] for i in call.rows],
                g.host_ids.numpy(),
                g.host_mask.numpy(),
                self._tokenizers.pad_id,
            )
            g.ids.copy_(g.host_ids, non_blocking=True)
            g.mask.copy_(g.host_mask, non_blocking=True)
            g.copied.record()
            g.graph.replay()
            # Clone now: the next replay of this graph (or of one sharing its memory pool)
            # overwrites the static outputs.
            n = len(call.rows)
            sents.append(g.sentiment[:n].clone())
            tops.append(g.topic[:n].clone())
            rows.extend(call.rows)
            self._account(call, stats)
        return _gather(rows, sents, tops)

    @staticmethod
    def _account(call: Call, stats: _CallStats) -> None:
        stats.padded_tokens += call.batch * call.length
        stats.dummy_rows += call.dummies
        stats.calls += 1

    def _capture(self, batch: int, length: int) -> _Graph:
        """Capture the forward pass for one ``(B, L)`` shape (see the PyTorch CUDA graphs docs:
        static inputs, warm-up on a side stream, capture, then replay after filling inputs)."""
        torch = self._torch
        shape = (batch, length)
        host_ids = torch.empty(shape, dtype=torch.int64, pin_memory=True)
        host_mask = torch.empty(shape, dtype=torch.int64, pin_memory=True)
        # A realistic placeholder (padding present) so warm-up and capture take the same
        # masked-attention path that real batches take.
        fill_batch([], host_ids.numpy(), host_mask.numpy(), self._tokenizers.pad_id)
        static_ids = host_ids.to(self.device)
        static_mask = host_mask.to(self.device)
        side = self._capture_stream
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(CAPTURE_WARMUP_ITERS):
                self._forward(static_ids, static_mask)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, stream=side):
            sent, top = self._forward(static_ids, static_mask)
        return _Graph(
            graph=graph,
            ids=static_ids,
            mask=static_mask,
            host_ids=host_ids,
            host_mask=host_mask,
            sentiment=sent,
            topic=top,
            copied=torch.cuda.Event(),
        )


def _gather(
    rows: list[int], sents: list[torch.Tensor], tops: list[torch.Tensor]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One concatenation and one device->host copy for the whole call (one sync on CUDA)."""
    cat = _import_torch().cat
    sent = cat(sents).cpu().numpy()
    top = cat(tops).cpu().numpy()
    return np.asarray(rows, dtype=np.int64), sent, top


def checkpoint_path(bundle_dir: Path, model: str) -> Path:
    return bundle_dir.joinpath(*CHECKPOINT_SUBDIR, model)


def missing_checkpoint_message(bundle_dir: Path, model: str) -> str:
    models_dir = bundle_dir.joinpath(*CHECKPOINT_SUBDIR)
    found = (
        sorted(p.name for p in models_dir.iterdir() if (p / CHECKPOINT_META).is_file())
        if models_dir.is_dir()
        else []
    )
    have = f"it has checkpoints {found}" if found else "it keeps no PyTorch checkpoints"
    return (
        f"bundle {bundle_dir} has no PyTorch checkpoint {model!r} at "
        f"{checkpoint_path(bundle_dir, model)} ({have}); the torch scorer runs the build's "
        f"trained model, which only a full build keeps: build the bundle with `streamer models "
        f"build --profile full --out {bundle_dir}` (the quick default bundle deletes its work "
        "files), point STREAMER_BUNDLE_DIR at such a bundle, or use STREAMER_SCORER=onnx"
    )


def _load_checkpoint(path: Path) -> tuple[MultiTaskModel, dict[str, list[str]]]:
    if not (path / CHECKPOINT_META).is_file():
        raise ScorerError(
            f"{path} is not a PyTorch checkpoint (no {CHECKPOINT_META}); pass a directory "
            "written by `streamer models build` (<bundle>/_work/models/<model>)"
        )
    from streamer.network.heads import load_model

    try:
        model, meta = load_model(path)
    except Exception as exc:  # transformers/torch raise many unrelated types
        raise ScorerError(
            f"cannot load the PyTorch checkpoint {path}: {exc}; rebuild the bundle with "
            "`streamer models build --profile full`"
        ) from exc
    return model, meta.labels


def _set_attention(encoder: Any, impl: Attention) -> None:
    """Switch a loaded encoder's attention kernel (checkpoints load with ``eager``)."""
    setter = getattr(encoder, "set_attn_implementation", None)
    if setter is not None:
        setter(impl)
    else:  # transformers before the attention interface: the config attribute decides
        encoder.config._attn_implementation = impl
    if encoder.config._attn_implementation != impl:
        raise ScorerError(f"this encoder cannot use {impl!r} attention; pass attention='eager'")


def _check_labels(
    head: str, given: Sequence[str] | None, model_labels: Mapping[str, Sequence[str]], path: Path
) -> tuple[str, ...]:
    if head not in model_labels:
        raise ScorerError(f"checkpoint {path} has no {head!r} head (heads: {list(model_labels)})")
    have = tuple(model_labels[head])
    if given is not None and tuple(given) != have:
        raise ScorerError(
            f"label mismatch for head {head!r}: the manifest lists {list(given)} but checkpoint "
            f"{path} was trained with {list(have)}; they come from different builds - rebuild "
            "the bundle with `streamer models build --profile full`"
        )
    return have


__all__ = [
    "Call",
    "GraphCache",
    "GraphKey",
    "TorchScorer",
    "check_buckets",
    "fill_batch",
    "plan_calls",
    "resolve_device",
]
