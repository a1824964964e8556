"""The model card: what each variant weighs, how well and how fast it scores, how it was made.

Figures are measured, never copied: accuracy and macro-F1 per head on the bundle's own
validation split (each sentiment dataset also on its own), through the same OnnxScorer the
worker uses; messages per second at batch 1 and 32 on the machine that built the bundle.
Written as MODEL_CARD.json (for tools) and MODEL_CARD.md (for people).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from streamer.bundle.manifest import BuildInfo, BundleManifest, TeacherSelection, VerifyResult
from streamer.score.base import Scorer
from streamer.training.data import Example
from streamer.training.metrics import HeadMetrics, head_metrics
from streamer.training.progress import SILENT, Reporter

CARD_JSON = "MODEL_CARD.json"
CARD_MD = "MODEL_CARD.md"


class Speed(BaseModel):
    batch1_msgs_per_s: float
    batch32_msgs_per_s: float
    intra_op_threads: int
    texts: int = Field(description="Distinct texts timed (validation rows, both sources).")


class VariantCard(BaseModel):
    name: str
    precision: str
    device: str
    layers: int
    size_bytes: int
    heads: dict[str, HeadMetrics] = Field(default_factory=dict)
    datasets: dict[str, HeadMetrics] = Field(default_factory=dict)
    speed: Speed | None = None
    verify: VerifyResult | None = None
    note: str | None = None


class Machine(BaseModel):
    system: str
    machine: str
    cpu_count: int | None
    python: str


class ModelCard(BaseModel):
    bundle: str
    created_at: str
    machine: Machine
    build: BuildInfo
    max_length: dict[str, int]
    truncation: str
    datasets: list[dict[str, object]]
    variants: list[VariantCard]
    default_variant: dict[str, str]


def machine_info() -> Machine:
    return Machine(
        system=f"{platform.system()} {platform.release()}",
        machine=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
    )


def score_examples(
    scorer: Scorer, examples: Sequence[Example], batch: int = 64, reporter: Reporter = SILENT,
    description: str = "evaluate",
) -> tuple[np.ndarray, np.ndarray]:
    """Sentiment and topic probabilities for every example (input order)."""
    sent: list[np.ndarray] = []
    top: list[np.ndarray] = []
    with reporter.bar(description, total=len(examples)) as bar:
        for start in range(0, len(examples), batch):
            chunk = examples[start : start + batch]
            out = scorer.score([e.text for e in chunk], [e.source for e in chunk])
            sent.append(out.sentiment)
            top.append(out.topic)
            bar.advance(len(chunk))
    if not sent:
        return np.zeros((0, len(scorer.sentiment_labels))), np.zeros((0, len(scorer.topic_labels)))
    return np.concatenate(sent), np.concatenate(top)


def evaluate(
    scorer: Scorer, examples: Sequence[Example], reporter: Reporter = SILENT,
    description: str = "evaluate",
) -> tuple[dict[str, HeadMetrics], dict[str, HeadMetrics]]:
    """Metrics per head (on the rows labelled for it) and per dataset."""
    sent_p, top_p = score_examples(scorer, examples, reporter=reporter, description=description)
    probs = {"sentiment": sent_p, "topic": top_p}
    labels = {"sentiment": list(scorer.sentiment_labels), "topic": list(scorer.topic_labels)}
    heads: dict[str, HeadMetrics] = {}
    datasets: dict[str, HeadMetrics] = {}

    def metrics_for(rows: list[int], head: str) -> HeadMetrics:
        index = {n: i for i, n in enumerate(labels[head])}
        y_true = [index[examples[i].label] for i in rows]
        y_pred = probs[head][rows].argmax(axis=1)
        return head_metrics(y_true, y_pred, labels[head])

    for head in ("sentiment", "topic"):
        rows = [i for i, e in enumerate(examples) if e.head == head]
        if rows:
            heads[head] = metrics_for(rows, head)
    for name in sorted({e.dataset for e in examples}):
        rows = [i for i, e in enumerate(examples) if e.dataset == name]
        datasets[name] = metrics_for(rows, examples[rows[0]].head)
    return heads, datasets


def measure_speed(
    scorer: Scorer,
    examples: Sequence[Example],
    n_single: int = 200,
    n_batches: int = 12,
    threads: int = 1,
) -> Speed:
    """Messages/s at batch 1 (one call per message) and batch 32, after a warm-up."""
    texts = [e.text for e in examples]
    sources = [e.source for e in examples]
    if not texts:
        return Speed(batch1_msgs_per_s=0, batch32_msgs_per_s=0, intra_op_threads=threads, texts=0)
    scorer.warmup()
    n1 = min(n_single, len(texts))
    t0 = time.perf_counter()
    for i in range(n1):
        scorer.score([texts[i]], [sources[i]])
    b1 = n1 / (time.perf_counter() - t0)
    done = 0
    t0 = time.perf_counter()
    for b in range(n_batches):
        idx = [(b * 32 + j) % len(texts) for j in range(32)]
        scorer.score([texts[i] for i in idx], [sources[i] for i in idx])
        done += 32
    b32 = done / (time.perf_counter() - t0)
    return Speed(
        batch1_msgs_per_s=round(b1, 1),
        batch32_msgs_per_s=round(b32, 1),
        intra_op_threads=threads,
        texts=max(n1, min(len(texts), n_batches * 32)),
    )


def speed_sample(examples: Sequence[Example], n: int = 400, seed: int = 0) -> list[Example]:
    """A fixed mixed sample of validation rows (chat and news in their natural shares)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(examples))[:n]
    return [examples[int(i)] for i in idx]


def build_card(
    manifest: BundleManifest, variants: list[VariantCard], bundle_name: str
) -> ModelCard:
    return ModelCard(
        bundle=bundle_name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=machine_info(),
        build=manifest.build,
        max_length=manifest.max_length,
        truncation=manifest.truncation,
        datasets=[
            {
                "name": d.name,
                "head": d.head,
                "file": d.file,
                "rows": d.rows,
                "train_rows": d.train_rows,
                "val_rows": d.val_rows,
                "label_mapping": d.label_mapping,
            }
            for d in manifest.datasets
        ],
        variants=variants,
        default_variant=dict(manifest.default_variant),
    )


def _pct(m: HeadMetrics | None) -> str:
    return "-" if m is None else f"{100 * m.accuracy:.1f} / {100 * m.macro_f1:.1f}"


def _selection_lines(sel: TeacherSelection | None) -> list[str]:
    if sel is None:
        return []
    scores = "; ".join(
        f"seed {seed}: " + ", ".join(f"{h} {100 * a:.2f}" for h, a in acc.items())
        + (" (chosen)" if seed == sel.chosen else "")
        for seed, acc in sel.scores.items()
    )
    return [
        f"- Teacher: one trained per seed on the training rows minus {sel.rows} held out "
        f"to choose; kept the best by {sel.metric} (%): {scores}. The validation split "
        "took no part in the choice."
    ]


def render_markdown(card: ModelCard) -> str:
    ds_names = [str(d["name"]) for d in card.datasets]
    lines = [
        f"# Model card: {card.bundle}",
        "",
        f"Built {card.created_at} on {card.machine.system}, {card.machine.machine}, "
        f"{card.machine.cpu_count} CPUs (profile `{card.build.profile}`).",
        "",
        "## Variants",
        "",
        "Accuracy / macro-F1 (%) on the validation split carved off the training files "
        f"(seed {card.build.seed}, {100 * card.build.val_fraction:.0f}% per dataset, "
        "stratified; never trained on). Speed: messages/s through OnnxScorer on this machine.",
        "",
        "| variant | precision | layers | size MB | sentiment | topic | "
        + " | ".join(ds_names)
        + " | msg/s b1 | msg/s b32 |",
        "|---" * (8 + len(ds_names)) + "|",
    ]
    for v in card.variants:
        speed = v.speed
        lines.append(
            f"| {v.name} | {v.precision} | {v.layers} | {v.size_bytes / 1e6:.1f} | "
            f"{_pct(v.heads.get('sentiment'))} | {_pct(v.heads.get('topic'))} | "
            + " | ".join(_pct(v.datasets.get(n)) for n in ds_names)
            + f" | {speed.batch1_msgs_per_s if speed else '-'} | "
            f"{speed.batch32_msgs_per_s if speed else '-'} |"
        )
    notes = [f"- {v.name}: {v.note}" for v in card.variants if v.note]
    if notes:
        lines += ["", *notes]
    threads = {v.speed.intra_op_threads for v in card.variants if v.speed}
    lines += [
        "",
        f"Default variant per device: {card.default_variant}. "
        f"Speed measured with {sorted(threads) or '-'} ONNX Runtime intra-op thread(s).",
        "",
        "## Verification against PyTorch",
        "",
        "| variant | rows | argmax agreement | max prob diff | limits |",
        "|---|---|---|---|---|",
    ]
    for v in card.variants:
        r = v.verify
        if r is None:
            continue
        if r.skipped:
            lines.append(f"| {v.name} | - | skipped: {r.skipped[:80]} | - | - |")
            continue
        agree = ", ".join(f"{h} {a:.3f}" for h, a in r.argmax_agreement.items())
        diff = ", ".join(f"{h} {d:.4f}" for h, d in r.max_prob_diff.items())
        lines.append(
            f"| {v.name} | {r.n} | {agree} | {diff} | >= {r.min_agreement}, <= {r.max_diff} |"
        )
    b = card.build
    lines += [
        "",
        "## How it was built",
        "",
        f"- Base encoder: `{b.base}`",
        f"- Command: `{b.command}`",
        f"- Epochs: {b.epochs}; seed {b.seed}; {b.train_rows} training rows, "
        f"{b.val_rows} validation rows",
        f"- Truncation (tokens per source): {card.max_length}; {card.truncation}",
        f"- Build time: {b.duration_s:.0f}s" if b.duration_s else "- Build time: -",
        f"- Step times (s): {', '.join(f'{k} {v:.0f}' for k, v in b.steps_s.items())}",
        f"- Library versions: {', '.join(f'{k} {v}' for k, v in sorted(b.versions.items()))}",
        *[f"- Note: {n}" for n in b.notes],
        *_selection_lines(b.teacher_selection),
        "",
        "## Data",
        "",
        "| dataset | head | rows | train | validation | label mapping |",
        "|---|---|---|---|---|---|",
    ]
    for d in card.datasets:
        lines.append(
            f"| {d['name']} | {d['head']} | {d['rows']} | {d['train_rows']} | {d['val_rows']} "
            f"| {d['label_mapping']} |"
        )
    return "\n".join(lines) + "\n"


def write_card(card: ModelCard, bundle_dir: Path) -> None:
    (bundle_dir / CARD_JSON).write_text(card.model_dump_json(indent=2), "utf-8")
    (bundle_dir / CARD_MD).write_text(render_markdown(card), "utf-8")
