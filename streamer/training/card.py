"""The model card: what each variant weighs, how well and how fast it scores, how it was made,
on what data and terms.

Figures are measured, never copied: accuracy and macro-F1 per head on the bundle's own
validation split (each dataset also on its own), through the same OnnxScorer the worker
uses; messages per second at batch 1 and 32 on the machine that built the bundle; rows,
label counts, mappings and step times from the build's manifest. Licences and citations
come from ``provenance``. Written as MODEL_CARD.json (for tools) and MODEL_CARD.md (for
people), the latter in the Hugging Face model card layout (YAML metadata, then sections).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from streamer.bundle.manifest import (
    BuildInfo,
    BundleManifest,
    DatasetSummary,
    HfFolder,
    TeacherSelection,
    VerifyResult,
)
from streamer.score.base import Scorer
from streamer.training.data import Example
from streamer.training.metrics import HeadMetrics, head_metrics
from streamer.training.progress import SILENT, Reporter
from streamer.training.provenance import (
    UNKNOWN_LICENCE,
    BundleLicence,
    base_terms,
    bundle_licence,
    data_terms,
)

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
    pooling: str
    heads: dict[str, list[str]] = Field(description="Head -> its labels, in output order.")
    datasets: list[DatasetSummary]
    variants: list[VariantCard]
    variant_files: dict[str, str] = Field(description="Variant -> its ONNX file.")
    default_variant: dict[str, str]
    pad_token_id: int
    layers_from_base: dict[str, list[int]] = Field(
        default_factory=dict, description="Model -> the base encoder's blocks it kept."
    )
    hf: list[HfFolder] = Field(default_factory=list)
    licence: BundleLicence


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
        pooling=manifest.pooling,
        heads={h.name: h.labels for h in manifest.heads},
        datasets=manifest.datasets,
        variants=variants,
        variant_files={v.name: v.file for v in manifest.variants},
        default_variant=dict(manifest.default_variant),
        pad_token_id=manifest.pad_token_id,
        layers_from_base={v.name.rsplit("-", 1)[0]: v.layers_from_base
                          for v in manifest.variants},
        hf=manifest.hf,
        licence=bundle_licence([d.name for d in manifest.datasets], manifest.build.base),
    )


def _pct(m: HeadMetrics | None) -> str:
    return "-" if m is None else f"{100 * m.accuracy:.1f} / {100 * m.macro_f1:.1f}"


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell (TFN topics hold '|')."""
    return str(text).replace("|", "\\|")


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


def _yaml_list(key: str, items: Sequence[str]) -> list[str]:
    # JSON strings are valid YAML scalars: no quoting rules of our own.
    return [f"{key}:", *(f"- {json.dumps(i)}" for i in items)] if items else []


def front_matter(card: ModelCard) -> list[str]:
    """The Hugging Face model card metadata (YAML between '---' lines)."""
    lic = card.licence
    base = base_terms(card.build.base)
    data_ids = [t.hf_id for d in card.datasets if (t := data_terms(d.name)) and t.hf_id]
    tags = ["finance", "sentiment-analysis", "topic-classification", "multi-task", "onnx"]
    if "teacher" in card.build.epochs and len(card.build.epochs) > 1:
        tags.append("knowledge-distillation")
    return [
        "---",
        f"license: {json.dumps(lic.hf_license)}",
        *([f"license_name: {json.dumps(lic.license_name)}"] if lic.license_name else []),
        *_yaml_list("language", ["en"]),
        "library_name: transformers",
        "pipeline_tag: text-classification",
        *([f"base_model: {json.dumps(base.hf_id)}"] if base and base.hf_id else []),
        *_yaml_list("tags", tags),
        *_yaml_list("datasets", data_ids),
        *_yaml_list("metrics", ["accuracy", "f1"]),
        "---",
    ]


def _models(card: ModelCard) -> dict[str, list[VariantCard]]:
    """Variants per model ('teacher', 'student2'...), in card order."""
    out: dict[str, list[VariantCard]] = {}
    for v in card.variants:
        out.setdefault(v.name.rsplit("-", 1)[0], []).append(v)
    return out


def _details(card: ModelCard) -> list[str]:
    b = card.build
    base = base_terms(b.base)
    base_name = base.title if base else f"`{b.base}`"
    topics = card.heads.get("topic", [])
    lines = [
        "## Model details",
        "",
        f"One shared encoder fine-tuned from {base_name} "
        f"({base.licence if base else 'licence unknown'}) with two linear heads over its "
        f"{'[CLS] vector' if card.pooling == 'cls' else 'mean-pooled output'}: "
        f"**sentiment** ({', '.join(card.heads.get('sentiment', []))}) and **topic** "
        f"({len(topics)} topics: {', '.join(topics)}). Each model scores both heads in one "
        "pass; the ONNX variants output softmax probabilities per head.",
        "",
        "| model | layers | blocks kept from the base | epochs | ONNX variants | "
        "Hugging Face folder |",
        "|---|---|---|---|---|---|",
    ]
    hf = {f.model: f.path for f in card.hf}
    for model, variants in _models(card).items():
        lines.append(
            f"| {model} | {variants[0].layers} | {_layers_from_base(card, model)} | "
            f"{b.epochs[model]:g} | {', '.join(v.name for v in variants)} | "
            f"{'`' + hf[model] + '/`' if model in hf else '-'} |"
        )
    lines += [
        "",
        "- Input: English text, tokenized with the base's tokenizer (`tokenizer.json`), "
        "truncated per source: "
        + ", ".join(f"{src} {n} tokens" for src, n in card.max_length.items())
        + f" ({card.truncation}).",
        "- Default variant per device: "
        + ", ".join(f"{dev} `{name}`" for dev, name in card.default_variant.items()) + ".",
        f"- Built {card.created_at}, profile `{b.profile}`, by `{b.command}`.",
    ]
    return lines


def _layers_from_base(card: ModelCard, model: str) -> str:
    kept = card.layers_from_base.get(model)
    return ", ".join(map(str, kept)) if kept else "-"


def _intended_use(card: ModelCard) -> list[str]:
    return [
        "## Intended use",
        "",
        "Scoring a real-time stream of English financial text (news stories and "
        "chat/tweet-like messages) for market monitoring: each message gets a sentiment "
        "and a topic distribution, which streamer aggregates into per-topic trends and "
        "negative-sentiment spike alerts for a human to look at.",
        "",
        "### Out-of-scope use",
        "",
        "- Trading or investment decisions from a single score, without a person in the loop.",
        "- Text other than English financial news and posts; long documents (only the first "
        + " / ".join(f"{n} ({src})" for src, n in card.max_length.items())
        + " tokens are read).",
        "- Judging people, or any use its licence excludes (see Licence below).",
    ]


def _mapping_lines(d: DatasetSummary) -> list[str]:
    identity = all(raw == head for raw, head in d.label_mapping.items())
    if identity and not d.label_reasons:
        return [f"- **{d.name}**: its labels are used as they are "
                f"({', '.join(_cell(x) for x in d.label_mapping)})."]
    lines = [f"- **{d.name}** -> {d.head} head:", "",
             "  | dataset label | head label | why |", "  |---|---|---|"]
    for raw, head in d.label_mapping.items():
        lines.append(f"  | {_cell(raw)} | {_cell(head)} | {_cell(d.label_reasons.get(raw, '-'))} |")
    return [*lines, ""]


def _training_data(card: ModelCard) -> list[str]:
    b = card.build
    lines = [
        "## Training data",
        "",
        f"Each head trains on its data sets; a seeded ({b.seed}), stratified "
        f"{100 * b.val_fraction:.0f}% of each is held out as the validation split "
        f"(never trained on). {b.train_rows} training rows, {b.val_rows} validation rows "
        "in all.",
        "",
        "| dataset | head | source | rows in file | train | validation | labels (rows in file) "
        "| licence | origin |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in card.datasets:
        terms = data_terms(d.name)
        counts = ", ".join(f"{_cell(k)} {n}" for k, n in
                           sorted(d.label_counts.items(), key=lambda kv: -kv[1]))
        origin = (terms.title + (f" (`{terms.hf_id}`)" if terms.hf_id else "")) if terms else (
            f"`{d.file}`")
        lines.append(
            f"| {d.name} | {d.head} | {d.source} | {d.rows} | {d.train_rows} | {d.val_rows} "
            f"| {counts} | {terms.licence if terms else UNKNOWN_LICENCE} | {_cell(origin)} |"
        )
    lines += ["", "### Label mapping", "",
              "What each data set's labels become on its head, and why:", ""]
    for d in card.datasets:
        lines += _mapping_lines(d)
    return lines


def _procedure(card: ModelCard) -> list[str]:
    b, m = card.build, card.machine
    total = f"{b.duration_s:.0f}s" if b.duration_s else "-"
    lines = [
        "## Training procedure",
        "",
        f"- Profile `{b.profile}`; epochs per model: "
        + ", ".join(f"{k} {v:g}" for k, v in b.epochs.items())
        + f"; seed {b.seed}; pooling {card.pooling}.",
        *[f"- {n}" for n in b.notes],
        *_selection_lines(b.teacher_selection),
        f"- Machine: {m.system}, {m.machine}, {m.cpu_count} CPUs, Python {m.python}.",
        f"- Library versions: {', '.join(f'{k} {v}' for k, v in sorted(b.versions.items()))}.",
        "",
        f"Build time: {total} of steps in all (steps skipped on a resumed build count the "
        "time of the run that did them).",
        "",
        "| step | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.1f} |" for k, v in b.steps_s.items()],
    ]
    return lines


def _evaluation(card: ModelCard) -> list[str]:
    ds_names = [d.name for d in card.datasets]
    lines = [
        "## Evaluation",
        "",
        "Accuracy / macro-F1 (%) on the validation split carved off the training files "
        f"(seed {card.build.seed}, {100 * card.build.val_fraction:.0f}% per dataset, "
        "stratified; never trained on), per head and per data set. Speed: messages/s through "
        "OnnxScorer on the build machine.",
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
        f"Speed measured with {sorted(threads) or '-'} ONNX Runtime intra-op thread(s).",
        "",
        "### Verification against PyTorch",
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
    return lines


def _limitations(card: ModelCard) -> list[str]:
    lines = [
        "## Limitations and bias",
        "",
        "- The validation split comes from the same files as the training rows, so the "
        "figures above are in-distribution: expect lower accuracy on other outlets, other "
        "periods and other writing styles.",
        "- The data come from fixed past periods (the tweets of the Twitter Financial News "
        "sets, the Reuters-21578 newswire); tickers, names and events after them are unknown "
        "to the model.",
        "- Sentiment is as the annotators judged it for an investor; probabilities are "
        "softmax outputs, not calibrated likelihoods.",
    ]
    for d in card.datasets:
        total = sum(d.label_counts.values())
        if total:
            top, n = max(d.label_counts.items(), key=lambda kv: kv[1])
            lines.append(f"- {d.name} is imbalanced: {_cell(top)} is {100 * n / total:.0f}% of "
                         "its rows (hence macro-F1 beside accuracy).")
    news = {h for d in card.datasets if d.head == "topic" and d.source == "news"
            for h in d.label_mapping.values()}
    unseen = [t for t in card.heads.get("topic", []) if t not in news]
    if news and unseen:
        lines.append(
            f"- On news, the topic head was trained on {len(news)} of its "
            f"{len(card.heads['topic'])} topics (the news data sets' labels, mapped); the other "
            f"{len(unseen)} ({', '.join(_cell(t) for t in unseen)}) it learned from chat alone."
        )
    if card.build.profile in ("tiny", "speed") or any("capped" in n for n in card.build.notes):
        lines.append("- A test-sized build (training rows capped): its figures say the "
                     "pipeline works, not how well a full build scores.")
    return lines


def onnx_usage(card: ModelCard, bundle: str, texts: list[str] | None = None,
               source: str = "chat") -> str:
    """Python that scores ``texts`` with the bundle's default CPU variant through
    onnxruntime and tokenizers alone: the card's snippet (the tests run it)."""
    variant = card.default_variant.get("cpu") or card.variants[0].name
    texts = texts or ["$TSLA to the moon!!", "Oil prices fell after OPEC raised output."]
    return f'''import json

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

bundle = {bundle!r}
texts = {texts!r}
source = {source!r}  # "chat" or "news"
manifest = json.load(open(f"{{bundle}}/manifest.json"))
tokenizer = Tokenizer.from_file(f"{{bundle}}/{{manifest['tokenizer']}}")
tokenizer.no_padding()
tokenizer.enable_truncation(max_length=manifest["max_length"][source])
ids = [e.ids for e in tokenizer.encode_batch(texts)]
width = max(len(i) for i in ids)
input_ids = np.full((len(ids), width), manifest["pad_token_id"], dtype=np.int64)
attention_mask = np.zeros((len(ids), width), dtype=np.int64)
for row, seq in enumerate(ids):
    input_ids[row, :len(seq)] = seq
    attention_mask[row, :len(seq)] = 1
session = ort.InferenceSession(f"{{bundle}}/{card.variant_files.get(variant, variant + '.onnx')}",
                               providers=["CPUExecutionProvider"])
outputs = session.run([head["output"] for head in manifest["heads"]],
                      {{"input_ids": input_ids, "attention_mask": attention_mask}})
probs = {{head["name"]: out for head, out in zip(manifest["heads"], outputs)}}
for head in manifest["heads"]:
    print(head["name"], [head["labels"][i] for i in probs[head["name"]].argmax(1)])
'''


def _how_to_use(card: ModelCard) -> list[str]:
    from streamer.training.hf_export import usage

    hf = min(card.hf, key=lambda f: f.layers) if card.hf else None
    lines = [
        "## How to use",
        "",
        "### With streamer",
        "",
        "```",
        f"STREAMER_BUNDLE_DIR=/path/to/{card.bundle} streamer worker   # scores with "
        f"{card.default_variant.get('cpu', '-')} on CPU",
        f"streamer models eval /path/to/{card.bundle} --data FILE.csv  # text,label rows",
        "```",
        "",
        "### With onnxruntime",
        "",
        "The bundle needs only `onnxruntime`, `tokenizers` and `numpy`; each ONNX variant "
        "outputs one probability tensor per head (`manifest.json` lists the heads, their "
        "labels and the truncation per source):",
        "",
        "```python",
        onnx_usage(card, f"/path/to/{card.bundle}").rstrip(),
        "```",
    ]
    if hf is not None:
        lines += [
            "",
            "### With transformers",
            "",
            "Each PyTorch model is also saved in Hugging Face layout: "
            + ", ".join(f"`{f.path}/`" for f in card.hf)
            + " (encoder `config.json` + `model.safetensors`, tokenizer files, and the two "
            "heads as `heads.safetensors` described by `heads.json`). `AutoModel` and "
            "`AutoTokenizer` load the folder offline; the heads are one matrix product "
            "each over the pooled output:",
            "",
            "```python",
            usage(f"/path/to/{card.bundle}/{hf.path}").rstrip(),
            "```",
            "",
            "The folder is also the layout optimum's exporters read (e.g. `optimum-cli export "
            "onnx --model <folder> --task feature-extraction <out>`, which exports the "
            "encoder; apply the heads as above). This build does not run optimum.",
        ]
    return lines


def _licence(card: ModelCard) -> list[str]:
    lic = card.licence
    base = base_terms(card.build.base)
    binding = [(name, data_terms(name)) for name in lic.binding]
    lines = ["## Licence and citation", ""]
    if binding:
        names = "; and ".join(
            f"{t.title}: {t.licence}" if t else f"{name}: {UNKNOWN_LICENCE}"
            for name, t in binding
        )
        lines.append(
            "The weights learned from every training data set, so the bundle as a whole "
            f"(ONNX variants and Hugging Face folders alike) is bound by the terms of {names}."
        )
        terms = " ".join(t.licence for _, t in binding if t)
        if "NC" in terms:
            lines.append("In particular it may be used for non-commercial purposes only, with "
                         "attribution" + (", and anything derived from it must be shared under "
                         "the same licence" if "SA" in terms else "") + ".")
        lines.append(f"Hub metadata: `license: {lic.hf_license}`"
                     + (f" (`{lic.license_name}`)" if lic.license_name else "") + ".")
    else:
        lines.append(f"Every input carries permissive terms; hub metadata: "
                     f"`license: {lic.hf_license}`.")
    lines += [
        "",
        f"- Base encoder: {base.title + ': ' + base.licence if base else card.build.base}"
        f"{' (licence unknown)' if base is None else ''}.",
    ]
    for d in card.datasets:
        t = data_terms(d.name)
        lines.append(f"- {d.name}: {t.licence if t else UNKNOWN_LICENCE}.")
    cites = [t.citation for t in (base, *(data_terms(d.name) for d in card.datasets))
             if t and t.citation]
    if cites:
        lines += ["", "Please cite the sources:", "", *[f"- {c}" for c in cites]]
    return lines


def render_markdown(card: ModelCard) -> str:
    """The card in the Hugging Face model card layout: YAML metadata, then model details,
    intended use, training data, procedure, evaluation, limitations, usage and licence."""
    lines = [
        *front_matter(card),
        "",
        f"# Model card: {card.bundle}",
        "",
        "Sentiment and topic of English financial news and chat, from one small multi-task "
        "encoder, exported to ONNX (FP32/INT8/FP16) for streamer's real-time scoring.",
        "",
    ]
    for section in (_details, _intended_use, _training_data, _procedure, _evaluation,
                    _limitations, _how_to_use, _licence):
        lines += [*section(card), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_card(card: ModelCard, bundle_dir: Path) -> None:
    (bundle_dir / CARD_JSON).write_text(card.model_dump_json(indent=2), "utf-8")
    (bundle_dir / CARD_MD).write_text(render_markdown(card), "utf-8")
