"""``manifest.json``: everything a runtime needs to use a bundle, and how it was made.

Pure pydantic (no torch, no onnxruntime), read by the worker on start-up. The format
version is bumped whenever a field changes meaning; readers refuse other versions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from streamer.schemas.events import Kind as Source
from streamer.schemas.types import Label

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
# A full build keeps its work, the trained PyTorch models included, inside the bundle:
# <bundle>/_work/models/<model>/, each with its meta file (the torch scorer serves them).
WORK_DIR = "_work"
MODELS_DIR = "models"
CHECKPOINT_SUBDIR = (WORK_DIR, MODELS_DIR)
CHECKPOINT_META = "model.json"
TOKENIZER_FILE = "tokenizer.json"
# Every profile also writes each PyTorch model (teacher, students) in Hugging Face layout,
# outside _work so the quick profile keeps it: <bundle>/hf/<model>/.
HF_DIR = "hf"

Head = Literal["sentiment", "topic"]
Precision = Literal["fp32", "fp16", "int8"]
Device = Literal["cpu", "cuda"]
Role = Literal["teacher", "student"]


class DatasetSummary(BaseModel):
    """What the manifest and card record about one dataset."""

    name: str
    head: Head
    file: str
    sha256: str
    source: Source
    rows: int
    train_rows: int
    val_rows: int
    label_mapping: dict[str, str] = Field(description="Dataset label -> head label, as applied.")
    label_reasons: dict[str, str] = Field(
        default_factory=dict, description="Dataset label -> why it maps where it does."
    )
    label_counts: dict[str, int]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class HeadInfo(BaseModel):
    name: str
    labels: list[Label] = Field(min_length=2, description="Output columns, in order.")
    output: str = Field(description="ONNX output name holding this head's probabilities.")

    @model_validator(mode="after")
    def _unique(self) -> HeadInfo:
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"head {self.name!r} repeats a label: {self.labels}")
        return self


class VerifyResult(BaseModel):
    """Agreement of an ONNX variant with the PyTorch model it came from."""

    n: int
    argmax_agreement: dict[str, float]
    max_prob_diff: dict[str, float]
    min_agreement: float
    max_diff: float
    passed: bool
    skipped: str | None = Field(None, description="Why it was not run (e.g. FP16 needs a GPU).")


class VariantInfo(BaseModel):
    name: str = Field(description="e.g. 'student3-int8'.")
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=1)
    precision: Precision
    device: Device = Field(description="Where it is meant to run.")
    role: Role
    layers: int = Field(ge=1)
    layers_from_base: list[int] = Field(default_factory=list)
    verify: VerifyResult | None = None


class TeacherSelection(BaseModel):
    """How the teacher was chosen among candidates differing only in their seed."""

    rows: int = Field(description="Training rows held out to choose (never the validation split).")
    metric: str = "mean over heads of the accuracy on the held-out rows"
    scores: dict[int, dict[str, float]] = Field(description="Seed -> accuracy per head.")
    chosen: int


class HfFolder(BaseModel):
    """One PyTorch model of the bundle saved in Hugging Face layout: the encoder loads with
    ``transformers.AutoModel``, the tokenizer with ``AutoTokenizer``, and the two heads are
    ``heads.safetensors`` described by ``heads.json`` (pooling, labels, truncation)."""

    model: str = Field(description="e.g. 'teacher', 'student2'.")
    path: str = Field(description="Folder relative to the bundle, e.g. 'hf/student2'.")
    role: Role
    layers: int = Field(ge=1)
    files: list[str] = Field(description="What the folder holds, relative to it.")


class BuildInfo(BaseModel):
    profile: str
    base: str
    seed: int
    val_fraction: float
    epochs: dict[str, float] = Field(description="Training epochs per model (teacher, students).")
    command: str
    versions: dict[str, str]
    created_at: str
    duration_s: float | None = None
    steps_s: dict[str, float] = Field(default_factory=dict)
    train_rows: int
    val_rows: int
    notes: list[str] = Field(default_factory=list)
    teacher_selection: TeacherSelection | None = None


class BundleManifest(BaseModel):
    format_version: int = FORMAT_VERSION
    name: str
    heads: list[HeadInfo]
    datasets: list[DatasetSummary] = Field(
        description="Per dataset: file, sha256, rows, and its label -> head label mapping."
    )
    variants: list[VariantInfo]
    default_variant: dict[Device, str] = Field(
        description="What variant='auto' loads per device: the best size/accuracy trade-off."
    )
    max_length: dict[str, int] = Field(description="Truncation in tokens per source.")
    truncation: str = "keep the first max_length tokens ([CLS] ... [SEP]); the rest is dropped"
    pooling: Literal["mean", "cls"]
    tokenizer: str = TOKENIZER_FILE
    pad_token_id: int = 0
    inputs: list[str] = Field(default_factory=lambda: ["input_ids", "attention_mask"])
    build: BuildInfo
    # Added without a format bump: readers refuse other versions, and the field changes the
    # meaning of nothing else. Bundles built before it read as having no HF folders; older
    # readers ignore it (pydantic drops unknown fields), so both keep working.
    hf: list[HfFolder] = Field(
        default_factory=list,
        description="The teacher and students in Hugging Face layout (transformers, optimum).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> BundleManifest:
        names = [h.name for h in self.heads]
        for need in ("sentiment", "topic"):
            if need not in names:
                raise ValueError(f"manifest has no {need!r} head (heads: {names})")
        variants = [v.name for v in self.variants]
        if len(set(variants)) != len(variants):
            raise ValueError(f"variant names repeat: {variants}")
        for device, name in self.default_variant.items():
            if name not in variants:
                raise ValueError(f"default {device} variant {name!r} is not among {variants}")
        return self

    def head(self, name: str) -> HeadInfo:
        for h in self.heads:
            if h.name == name:
                return h
        raise KeyError(name)

    def variant(self, name: str) -> VariantInfo:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def reading_of(
        self, labels: set[str], head: str = "auto"
    ) -> tuple[str, dict[str, str], DatasetSummary | None]:
        """How to score a labelled file against this bundle: ``(head, file label -> head
        label, the dataset whose mapping that is)``.

        Labels a head outputs are taken as they are. Otherwise the mapping of a training
        dataset whose labels cover the file's is applied (e.g. a Reuters R8 test file read
        through the R8 -> TFN topic mapping the build used). ValueError when neither fits.
        """
        heads = [h for h in self.heads if head in ("auto", h.name)]
        for h in heads:
            if labels <= set(h.labels):
                return h.name, {label: label for label in labels}, None
        for d in self.datasets:
            if d.head in (h.name for h in heads) and labels <= set(d.label_mapping):
                return d.head, {label: d.label_mapping[label] for label in labels}, d
        known = {h.name: h.labels for h in heads}
        raise ValueError(
            f"labels {sorted(labels)} are neither a head's labels ({known}) nor a training "
            "dataset's mapped labels; pass --head, or relabel the file"
        )
