"""Labelled data for the two heads: read ``text,label`` files, split off a validation set.

Everything a head knows about its labels comes from its files: the label set of a head is
the sorted union of the (mapped) labels found in its datasets. Each dataset may rename its
own labels onto the head's names (``label_map``); the mapping actually applied is recorded
in the bundle manifest so that a score can always be traced back to the data's labels.

The validation split is carved off each dataset per label (stratified) with a seeded RNG,
so the same files and seed always give the same split, and training never sees it.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from streamer.bundle.manifest import DatasetSummary, Head, file_sha256
from streamer.schemas.events import Kind as Source
from streamer.taxonomy import r8_label_map, r8_label_reasons

HEADS: tuple[Head, ...] = ("sentiment", "topic")
# The same variable as Settings.labelled_data_dir (STREAMER_DATA_DIR is the stack's data).
DATA_ENV = "STREAMER_LABELLED_DATA_DIR"


class DataError(ValueError):
    """Labelled data is missing or malformed; the message names the file and the fix."""


class DataMissing(DataError):
    """A labelled data file is not there at all; the message says where it must be and
    how to point at it."""


class DatasetSpec(BaseModel):
    """One labelled file feeding one head."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Short dataset name used in reports, e.g. 'tfn-sentiment'.")
    path: Path
    head: Head
    source: Source = Field(
        "news", description="Which input it resembles; picks its truncation length."
    )
    label_map: dict[str, str] = Field(
        default_factory=dict, description="Dataset label -> head label; unmapped keep their name."
    )
    label_reasons: dict[str, str] = Field(
        default_factory=dict, description="Dataset label -> why it maps where it does."
    )


class Example(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    label: str  # head label (after label_map)
    head: Head
    dataset: str
    source: Source




class SplitData(BaseModel):
    """Train and validation examples plus the label order of each head."""

    labels: dict[str, list[str]]  # head name -> label order (sorted)
    train: list[Example]
    val: list[Example]
    datasets: list[DatasetSummary]
    seed: int
    val_fraction: float

    def label_index(self, head: str) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.labels[head])}


def default_data_dir() -> Path:
    """``$STREAMER_LABELLED_DATA_DIR``, else ``shared/data`` beside the repository root."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "data"


def default_specs(data_dir: Path) -> list[DatasetSpec]:
    """The four shared sets; tweets truncate like chat, the rest like news. The topic head
    learns the 20 TFN topics from the topic tweets and from the R8 stories mapped onto them
    (``streamer.taxonomy``)."""
    return [
        DatasetSpec(
            name="tfn-sentiment",
            path=data_dir / "tfn-sentiment" / "train.csv",
            head="sentiment",
            source="chat",
        ),
        DatasetSpec(
            name="phrasebank",
            path=data_dir / "phrasebank" / "train.csv",
            head="sentiment",
            source="news",
        ),
        DatasetSpec(
            name="tfn-topic",
            path=data_dir / "tfn-topic" / "train.csv",
            head="topic",
            source="chat",
        ),
        DatasetSpec(
            name="reuters-topics",
            path=data_dir / "reuters-topics" / "train.csv",
            head="topic",
            source="news",
            label_map=r8_label_map(),
            label_reasons=r8_label_reasons(),
        ),
    ]




def require_labelled_data(data_dir: Path) -> None:
    """Raise DataMissing unless every file of :func:`default_specs` is under ``data_dir``.

    Cheap (no file is read): run it before anything slow, so a build without its data
    fails at once with the fix, not minutes later."""
    missing = [s.path for s in default_specs(data_dir) if not s.path.is_file()]
    if not missing:
        return
    where = ("it does not exist" if not data_dir.is_dir() else
             "missing " + ", ".join(str(p.relative_to(data_dir)) for p in missing))
    folders = ", ".join(f"{s.path.parent.name}/" for s in default_specs(data_dir))
    raise DataMissing(
        f"no labelled data at {data_dir} ({where}); the build needs {folders} each with a "
        f"train.csv ('text,label'): put the shared data there, or set {DATA_ENV} (or pass "
        "--data DIR) to the folder that holds it")


def require_files(specs: Iterable[DatasetSpec]) -> None:
    """Raise DataMissing naming every dataset file of ``specs`` that is not there."""
    missing = [str(s.path) for s in specs if not s.path.is_file()]
    if missing:
        raise DataMissing(f"labelled data file(s) not found: {', '.join(missing)}; pass "
                          f"--data DIR or set {DATA_ENV} to the folder holding them")


def read_rows(path: Path) -> list[tuple[str, str]]:
    """``(text, label)`` rows of a CSV (header ``text,label``) or JSONL file; blanks dropped."""
    if not path.is_file():
        raise DataMissing(f"labelled data file {path} does not exist; pass --data DIR or set "
                        f"{DATA_ENV} to the folder holding the 'text,label' files")
    rows: list[tuple[str, str]] = []
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    text, label = str(obj["text"]), str(obj["label"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise DataError(
                        f"{path}:{lineno}: expected a JSON object with 'text' and 'label' ({exc})"
                    ) from exc
                if text.strip() and label.strip():
                    rows.append((text, label.strip()))
    else:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = set(reader.fieldnames or ())
            if not {"text", "label"} <= fields:
                raise DataError(
                    f"{path}: header must contain 'text' and 'label' (found {sorted(fields)})"
                )
            for r in reader:
                text, label = r["text"] or "", r["label"] or ""
                if text.strip() and label.strip():
                    rows.append((text, label.strip()))
    if not rows:
        raise DataError(f"{path} holds no labelled rows")
    return rows


def stratified_split(
    labels: Sequence[str], val_fraction: float, rng: random.Random
) -> tuple[list[int], list[int]]:
    """Row indices (train, val): ``val_fraction`` of each label, at least one when it has 2+."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        # A label with a single row stays in train: a head must see every label it outputs.
        n_val = round(len(idx) * val_fraction)
        n_val = min(max(n_val, 1), len(idx) - 1) if len(idx) >= 2 else 0
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return sorted(train), sorted(val)


def hold_out(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split training examples into (kept, held out): ``fraction`` of each dataset's labels,
    seeded, in input order. The held-out rows choose among models trained on the rest."""
    by_dataset: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_dataset[ex.dataset].append(i)
    kept: list[int] = []
    held: list[int] = []
    for name in sorted(by_dataset):
        idx = by_dataset[name]
        rng = random.Random(f"{seed}:{name}:hold-out")
        tr, va = stratified_split([examples[i].label for i in idx], fraction, rng)
        kept.extend(idx[j] for j in tr)
        held.extend(idx[j] for j in va)
    return [examples[i] for i in sorted(kept)], [examples[i] for i in sorted(held)]


def _subsample(
    idx: list[int], labels: Sequence[str], limit: int | None, rng: random.Random
) -> list[int]:
    """Keep at most ``limit`` rows, proportionally per label (tiny test bundles)."""
    if limit is None or len(idx) <= limit:
        return idx
    by_label: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        by_label[labels[i]].append(i)
    keep: list[int] = []
    for label in sorted(by_label):
        rows = by_label[label]
        share = max(1, round(limit * len(rows) / len(idx)))
        keep.extend(rng.sample(rows, min(share, len(rows))))
    return sorted(keep)


def load_split(
    specs: Iterable[DatasetSpec],
    seed: int = 13,
    val_fraction: float = 0.1,
    max_rows_per_dataset: int | None = None,
) -> SplitData:
    """Read every dataset, map its labels, split each one stratified, and order the labels."""
    specs = list(specs)
    heads_seen = {s.head for s in specs}
    missing = [h for h in HEADS if h not in heads_seen]
    if missing:
        raise DataError(f"no dataset for head(s) {missing}; each head needs at least one file")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise DataError(f"dataset names must be unique: {names}")

    train: list[Example] = []
    val: list[Example] = []
    summaries: list[DatasetSummary] = []
    head_labels: dict[Head, set[str]] = {h: set() for h in HEADS}
    for spec in specs:
        rows = read_rows(spec.path)
        raw_labels = [label for _, label in rows]
        mapped = [spec.label_map.get(label, label) for label in raw_labels]
        # Seed per dataset so adding a dataset does not reshuffle another one's split.
        rng = random.Random(f"{seed}:{spec.name}")
        tr_idx, va_idx = stratified_split(mapped, val_fraction, rng)
        tr_idx = _subsample(tr_idx, mapped, max_rows_per_dataset, rng)
        va_idx = _subsample(
            va_idx,
            mapped,
            None if max_rows_per_dataset is None else max(8, int(max_rows_per_dataset * 0.3)),
            rng,
        )
        for idx, out in ((tr_idx, train), (va_idx, val)):
            out.extend(
                Example(
                    text=rows[i][0],
                    label=mapped[i],
                    head=spec.head,
                    dataset=spec.name,
                    source=spec.source,
                )
                for i in idx
            )
        head_labels[spec.head].update(mapped[i] for i in tr_idx)
        summaries.append(
            DatasetSummary(
                name=spec.name,
                head=spec.head,
                file=str(spec.path),
                sha256=file_sha256(spec.path),
                source=spec.source,
                rows=len(rows),
                train_rows=len(tr_idx),
                val_rows=len(va_idx),
                label_mapping={
                    raw: spec.label_map.get(raw, raw) for raw in sorted(set(raw_labels))
                },
                label_reasons={
                    raw: spec.label_reasons[raw]
                    for raw in sorted(set(raw_labels)) if raw in spec.label_reasons
                },
                label_counts=dict(sorted(Counter(mapped).items())),
            )
        )
    labels: dict[str, list[str]] = {h: sorted(head_labels[h]) for h in HEADS}
    for head, names_ in labels.items():
        if len(names_) < 2:
            raise DataError(f"head {head!r} has fewer than two labels in its data: {names_}")
    # Validation rows whose label never occurs in training cannot be scored; drop them.
    val = [ex for ex in val if ex.label in labels[ex.head]]
    return SplitData(
        labels=labels,
        train=train,
        val=val,
        datasets=summaries,
        seed=seed,
        val_fraction=val_fraction,
    )
