"""The inference benchmark: the naive path against the engine, same run, same texts.

Every path scores the same realistic texts (a fixed sample of the bundle's validation
split: finance tweets as chat, news sentences and Reuters stories as news, in their
natural shares), end to end per call: tokenization included.

* **naive**: what a user writes first: transformers ``AutoModel`` (PyTorch FP32, the
  6-layer teacher), tokenizer and model called once per message.
* **teacher ONNX FP32**, batched, each batch padded to its longest row.
* **student ONNX INT8** without bucketing (padded to the batch's longest row), with
  bucketing (sorted by length, each length bucket's rows in one call), and one text per
  call: the deployed path, where a text's scores depend on its text alone (dynamic
  quantization takes activation scales over the whole call).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from streamer.bundle.load import load_bundle
from streamer.score.base import BatchScores, Scorer
from streamer.training.card import Machine, machine_info
from streamer.training.data import Example

BATCHES: tuple[int, ...] = (1, 8, 32, 128)
NAIVE = "naive: transformers PyTorch FP32, one message per call"


class Cell(BaseModel):
    path: str
    variant: str
    batch: int
    messages: int
    msgs_per_s: float
    p50_ms: float = Field(description="Median wall time of one call (one batch).")
    p99_ms: float
    infer_p50_ms: float | None = Field(
        None, description="Model time per call: tokenization excluded, host-device copies in.")
    infer_p99_ms: float | None = None
    tokenize_share: float | None = Field(None, description="Tokenization's share of the time.")
    speedup: float | None = Field(None, description="msgs/s over the naive path's.")


class ModelBench(BaseModel):
    command: str
    date: str
    machine: Machine
    cpu: str
    threads: int
    bundle: str
    texts: int
    chat_share: float
    mean_tokens: float
    cells: list[Cell]
    versions: dict[str, str]
    notes: list[str] = Field(default_factory=list)

    def best(self, path: str) -> Cell | None:
        cells = [c for c in self.cells if c.path == path]
        return max(cells, key=lambda c: c.msgs_per_s) if cells else None


ScoreFn = Callable[[Sequence[str], Sequence[str]], object]


@dataclass
class Timing:
    rate: float  # messages/s over the whole run
    took: list[float]  # wall seconds per call
    results: list[object]


def time_calls(fn: ScoreFn, texts: Sequence[str], sources: Sequence[str], batch: int,
               *, warmup: int = 2) -> Timing:
    """Score ``texts`` in consecutive calls of ``batch`` after ``warmup`` untimed calls."""
    calls = [(i, min(i + batch, len(texts))) for i in range(0, len(texts), batch)]
    for a, b in calls[:warmup]:
        fn(texts[a:b], sources[a:b])
    took, results = [], []
    t_all = time.perf_counter()
    for a, b in calls:
        t0 = time.perf_counter()
        results.append(fn(texts[a:b], sources[a:b]))
        took.append(time.perf_counter() - t0)
    return Timing(len(texts) / (time.perf_counter() - t_all), took, results)


def naive_scorer(bundle_dir: Path, max_length: dict[str, int], threads: int
                 ) -> tuple[ScoreFn, str]:
    """The teacher as a user would first run it: transformers, FP32, one text per call.

    Uses the bundle's PyTorch teacher when the build kept it, else the base encoder with
    fresh heads (the same architecture, so the same cost)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from streamer.network.encoder import Pooling, default_base, pool
    from streamer.network.heads import load_model

    torch.set_num_threads(threads)
    teacher_dir = bundle_dir / "_work" / "models" / "teacher"
    pooling: Pooling
    if teacher_dir.is_dir():
        model, meta = load_model(teacher_dir)
        encoder, heads, what = model.encoder, model.heads, "the bundle's teacher"
        pooling = meta.pooling
        # load_model picks eager attention (what the ONNX export needs); a user's first
        # script gets transformers' default, SDPA, which is faster: measure that.
        encoder.set_attn_implementation("sdpa")
        tok_src = str(teacher_dir / "encoder")
        if not (teacher_dir / "encoder" / "tokenizer.json").exists():
            tok_src = meta.base
    else:
        base = default_base()
        encoder = AutoModel.from_pretrained(base)
        hidden = int(encoder.config.hidden_size)
        heads = torch.nn.ModuleDict({"sentiment": torch.nn.Linear(hidden, 3),
                                     "topic": torch.nn.Linear(hidden, 8)})
        what, tok_src = "the base encoder + fresh heads (no teacher checkpoint kept)", base
        pooling = "mean"
    tokenizer = AutoTokenizer.from_pretrained(tok_src)
    encoder.eval()

    def score(texts: Sequence[str], sources: Sequence[str]) -> object:
        out = []
        with torch.inference_mode():
            for text, src in zip(texts, sources, strict=True):
                enc = tokenizer(text, truncation=True, max_length=max_length.get(src, 128),
                                return_tensors="pt")
                hidden = encoder(**enc).last_hidden_state
                vec = pool(hidden, enc["attention_mask"], pooling)
                out.append({h: torch.softmax(heads[h](vec), -1) for h in heads})
        return out

    return score, what


def _pct(values: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values) * 1000.0, q)), 3)


def _cell(path: str, variant: str, batch: int, n: int, t: Timing) -> Cell:
    cell = Cell(path=path, variant=variant, batch=batch, messages=n,
                msgs_per_s=round(t.rate, 1), p50_ms=_pct(t.took, 50), p99_ms=_pct(t.took, 99))
    scores = [r for r in t.results if isinstance(r, BatchScores)]
    if scores and len(scores) == len(t.results):
        infer = [r.infer_s for r in scores]
        cell.infer_p50_ms, cell.infer_p99_ms = _pct(infer, 50), _pct(infer, 99)
        cell.tokenize_share = round(sum(r.tokenize_s for r in scores) / sum(t.took), 4)
    return cell


TENSORRT = "GPU: teacher ONNX Runtime TensorRT FP16"


def _gpu_scorers(bundle_dir: Path, teacher_fp16: str | None) -> tuple[list[tuple[str, Scorer]],
                                                                      list[str]]:
    """The GPU paths this machine can run, and notes on those it cannot."""
    out: list[tuple[str, Scorer]] = []
    notes: list[str] = []
    if teacher_fp16 is None:
        notes.append("the bundle has no FP16 teacher variant (the full and speed profiles "
                     "build one): the ONNX Runtime GPU rows are left out")
    try:
        import torch
        has_torch_cuda = bool(torch.cuda.is_available())
    except ImportError:
        has_torch_cuda = False
    if has_torch_cuda:
        from streamer.score.base import ScorerError
        from streamer.score.torch_scorer import TorchScorer

        try:
            out.append(("GPU: teacher PyTorch FP16 + CUDA graphs",
                        TorchScorer.from_bundle(bundle_dir, device="cuda")))
        except ScorerError as exc:  # no teacher checkpoint kept (the quick profile)
            notes.append(f"{exc}: the PyTorch FP16 + CUDA graphs rows are left out")
    else:
        notes.append("no CUDA GPU for torch here: the PyTorch FP16 + CUDA graphs rows are "
                     "left out")
    from streamer.score.onnx_scorer import OnnxScorer, cuda_available

    if not cuda_available():
        notes.append("no CUDA provider in onnxruntime here: the ONNX Runtime CUDA rows are "
                     "left out")
    elif teacher_fp16 is not None:
        cuda = OnnxScorer(bundle_dir, variant=teacher_fp16, tensorrt=False)
        if cuda.provider == "cuda":
            out.append(("GPU: teacher ONNX Runtime CUDA FP16", cuda))
        else:  # onnxruntime-gpu falls back to the CPU when CUDA's libraries do not load
            notes.append(f"onnxruntime's CUDA provider did not start (the session runs on "
                         f"{cuda.provider}; its log says why, often a missing CUDA or cuDNN "
                         "library): the ONNX Runtime CUDA rows are left out")
        out += _tensorrt_scorer(bundle_dir, teacher_fp16, notes)
    return out, notes


def _tensorrt_scorer(bundle_dir: Path, variant: str, notes: list[str]
                     ) -> list[tuple[str, Scorer]]:
    """The TensorRT path where onnxruntime has the provider and its libraries load."""
    import onnxruntime as ort

    from streamer.score.onnx_scorer import OnnxScorer
    from streamer.settings import get_settings

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        notes.append("no TensorRT provider in onnxruntime here: the TensorRT rows are left out")
        return []
    # The worker's engine cache: a second run reuses the engines the first one built.
    try:
        trt = OnnxScorer(bundle_dir, variant=variant, tensorrt=True,
                         trt_cache=get_settings().paths.cache_dir / "tensorrt")
    except Exception as exc:  # onnxruntime's errors have no common base
        notes.append(f"the TensorRT session did not open ({type(exc).__name__}: {exc}): the "
                     "TensorRT rows are left out")
        return []
    if trt.provider != "tensorrt":
        notes.append(f"onnxruntime lists TensorRT but its session runs on {trt.provider} "
                     "(TensorRT's libraries did not load): the TensorRT rows are left out")
        return []
    notes.append("TensorRT builds an engine per input shape, so its rows are the 64-token "
                 "texts only (one shape per batch size; engines cached in the cache dir's "
                 "tensorrt/)")
    return [(TENSORRT, trt)]


@dataclass
class Job:
    """One cell to measure: a path at one batch size over its texts."""

    path: str
    variant: str
    batch: int
    fn: ScoreFn
    texts: Sequence[str]
    sources: Sequence[str]
    timings: list[Timing]


def _merge(job: Job) -> Cell:
    """Median throughput over the rounds; latency percentiles over every call of them."""
    rates = sorted(t.rate for t in job.timings)
    pooled = Timing(rates[len(rates) // 2], [x for t in job.timings for x in t.took],
                    [r for t in job.timings for r in t.results])
    return _cell(job.path, job.variant, job.batch, len(job.texts), pooled)


def run(bundle_dir: Path, examples: Sequence[Example], *, threads: int = 2,
        batches: Sequence[int] = BATCHES, naive_texts: int = 256, command: str = "",
        include_naive: bool = True, include_gpu: bool = True, include_cpu: bool = True,
        rounds: int = 3, progress: Callable[[str], None] | None = None) -> ModelBench:
    """Every path over the same texts, measured in ``rounds`` interleaved rounds (each
    cell's msgs/s is its median: machines here are noisy, and interleaving spreads a slow
    spell over every path alike). ``naive_texts`` bounds the slow naive path's texts;
    ``include_cpu=False`` leaves out the ONNX CPU rows (teacher FP32, student INT8)."""
    from streamer.score.onnx_scorer import OnnxScorer

    bundle = load_bundle(bundle_dir, verify=())
    manifest = bundle.manifest
    texts = [e.text for e in examples]
    sources = [e.source for e in examples]
    say = progress or (lambda _msg: None)
    jobs: list[Job] = []
    notes: list[str] = []

    if include_naive:
        fn, what = naive_scorer(bundle_dir, manifest.max_length, threads)
        k = min(naive_texts, len(texts))
        jobs.append(Job(NAIVE, "teacher (PyTorch)", 1, fn, texts[:k], sources[:k], []))
        notes.append(f"naive path: {what}; torch threads {threads}")

    teacher = next((v.name for v in manifest.variants
                    if v.role == "teacher" and v.precision == "fp32"), None)
    students = sorted((v for v in manifest.variants
                       if v.role == "student" and v.precision == "int8"),
                      key=lambda v: (v.name != manifest.default_variant.get("cpu"), -v.layers))
    student = students[0].name if students else None  # the deployed one when it is a student
    # (path, variant, length bucketing, INT8 texts one per call)
    plan: list[tuple[str, str, bool, bool]] = []
    if not include_cpu:
        notes.append("the ONNX CPU rows (teacher FP32, student INT8) were left out (--no-cpu)")
    elif teacher is not None:
        plan.append(("teacher ONNX FP32, padded to the batch's longest", teacher, False, False))
    else:
        notes.append("the bundle has no FP32 teacher variant (quick profile): row left out")
    if student is not None and include_cpu:
        plan += [("student ONNX INT8, padded to the batch's longest", student, False, False),
                 ("student ONNX INT8, length-bucketed, shared calls", student, True, False),
                 ("student ONNX INT8, one text per call (deployed)", student, True, True)]
    for path, variant, bucketing, rows_alone in plan:
        for batch in batches:
            # Shared calls are faster where padding is small, but an INT8 text's scores
            # then depend on its call-mates; the worker scores each alone (deployed row).
            scorer = OnnxScorer(bundle_dir, variant=variant, intra_op_threads=threads,
                                max_group=max(batch, 1), bucketing=bucketing,
                                int8_rows_alone=rows_alone)
            scorer.warmup()
            jobs.append(Job(path, scorer.variant, batch, scorer.score,  # type: ignore[arg-type]
                            texts, sources, []))

    if include_gpu:
        fp16 = next((v.name for v in manifest.variants
                     if v.role == "teacher" and v.precision == "fp16"), None)
        gpu, gpu_notes = _gpu_scorers(bundle_dir, fp16)
        notes += gpu_notes
        # The GPU targets are per batch of 32 at 64 tokens: texts of exactly that length.
        # ([CLS] + 62 x "market" + [SEP] = 64 tokens.)
        fixed = [" ".join(["market"] * 62)] * 4096
        fixed_src = ["news"] * len(fixed)
        for path, gpu_scorer in gpu:
            gpu_fn: ScoreFn = gpu_scorer.score  # type: ignore[assignment]
            if path != TENSORRT:  # TensorRT: its engines are built on the texts' own shapes
                gpu_scorer.warmup()
                for batch in sorted({*batches, 256}):
                    jobs.append(Job(path, gpu_scorer.name, batch, gpu_fn, texts, sources, []))
            for batch in (32, 128, 256):
                jobs.append(Job(f"{path}, 64-token texts", gpu_scorer.name, batch, gpu_fn,
                                fixed, fixed_src, []))

    for r in range(rounds):
        for job in jobs:
            say(f"round {r + 1}/{rounds}: {job.path}, batch {job.batch}")
            job.timings.append(time_calls(job.fn, job.texts, job.sources, job.batch))
    cells = [_merge(job) for job in jobs]
    notes.append(f"{rounds} interleaved rounds; msg/s is each cell's median round, "
                 "latency percentiles pool every call")

    naive = next((c for c in cells if c.path == NAIVE), None)
    if naive is not None:
        for c in cells:
            c.speedup = round(c.msgs_per_s / naive.msgs_per_s, 2)

    tokens = _mean_tokens(bundle.tokenizer_path, manifest.max_length, texts, sources)
    from streamer.training.build import library_versions

    return ModelBench(
        command=command, date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine_info(), cpu=_cpu_model(), threads=threads, bundle=str(bundle_dir),
        texts=len(texts), chat_share=round(sources.count("chat") / max(1, len(sources)), 3),
        mean_tokens=round(tokens, 1), cells=cells, versions=library_versions(), notes=notes,
    )


def _mean_tokens(tokenizer: Path, max_length: dict[str, int], texts: Sequence[str],
                 sources: Sequence[str]) -> float:
    from streamer.bundle.tokenize import SourceTokenizers

    ids = SourceTokenizers(tokenizer, max_length).encode(texts, sources)
    return float(np.mean([len(x) for x in ids])) if ids else 0.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def markdown(b: ModelBench) -> str:
    lines = [
        f"Command: `{b.command}`  ",
        f"Machine: {b.cpu}, {b.machine.cpu_count} cores, {b.machine.system}; "
        f"{b.threads} thread(s) for every path; {b.date}  ",
        f"Texts: {b.texts} from the validation split ({b.chat_share:.0%} chat), "
        f"{b.mean_tokens:.1f} tokens on average after truncation  ",
        "",
        "| path | variant | batch | msg/s | p50 ms/batch | p99 ms/batch | model p99 ms "
        "| tokenize share | x naive |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in b.cells:
        x = f"{c.speedup:.1f}" if c.speedup is not None else "-"
        model = f"{c.infer_p99_ms:.2f}" if c.infer_p99_ms is not None else "-"
        tok = f"{c.tokenize_share:.0%}" if c.tokenize_share is not None else "-"
        lines.append(f"| {c.path} | {c.variant} | {c.batch} | {c.msgs_per_s:,.0f} | "
                     f"{c.p50_ms:.2f} | {c.p99_ms:.2f} | {model} | {tok} | {x} |")
    lines += ["", *(f"- {n}" for n in b.notes)]
    return "\n".join(lines) + "\n"


def write(b: ModelBench, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = "models-" + b.date[:10]
    md, js = out / f"{stem}.md", out / f"{stem}.json"
    md.write_text(markdown(b), "utf-8")
    js.write_text(b.model_dump_json(indent=2), "utf-8")
    return md, js


def sample(bundle_dir: Path, n: int, seed: int = 0) -> list[Example]:
    """``n`` validation rows of the bundle's own split (never trained on)."""
    from streamer.training.card import speed_sample
    from streamer.training.data import DatasetSpec, load_split

    m = load_bundle(bundle_dir, verify=()).manifest
    specs = [DatasetSpec(name=d.name, head=d.head, path=Path(d.file), source=d.source,
                         label_map=d.label_mapping) for d in m.datasets]
    split = load_split(specs, seed=m.build.seed, val_fraction=m.build.val_fraction)
    return speed_sample(split.val, n, seed)


__all__ = ["BATCHES", "Cell", "ModelBench", "markdown", "run", "sample", "write"]
