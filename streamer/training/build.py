"""Build a bundle end to end: data -> teacher -> students -> ONNX -> fusions -> INT8/FP16 ->
verification -> Hugging Face layout -> evaluation -> manifest and model card.

Resumable: each step writes its outputs, then a marker ``_work/done/<step>.json`` holding
a fingerprint of the settings it depends on and the step's result. A rerun skips every
step whose marker matches. Training steps (split, tokenizer, teacher, soft labels,
students) fingerprint only what changes the trained weights (data, base, seed, epochs...);
the later steps fingerprint every setting, so changing, say, the INT8 scheme or a
tolerance re-exports and re-verifies without retraining. A finished bundle carries
``BUILD_COMPLETE``.

torch and the training modules are imported inside the steps: importing this module (the
CLI does) stays cheap and works without the ``train`` extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, Field

from streamer.atomic import atomic_dir, atomic_file, write_text
from streamer.bundle.locate import COMPLETE_MARKER
from streamer.bundle.manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    MODELS_DIR,
    TOKENIZER_FILE,
    WORK_DIR,
    BuildInfo,
    BundleManifest,
    Device,
    HeadInfo,
    HfFolder,
    Precision,
    TeacherSelection,
    VariantInfo,
    VerifyResult,
)
from streamer.network.encoder import Pooling, resolve_base
from streamer.training.config import DistillConfig, TrainConfig
from streamer.training.data import (
    DatasetSpec,
    Example,
    SplitData,
    default_specs,
    hold_out,
    load_split,
    require_files,
)
from streamer.training.encoders import packaged_base
from streamer.training.progress import SILENT, Reporter, library_bars_off
from streamer.training.verify import DEFAULT_TOLERANCES, Tolerance

if TYPE_CHECKING:
    from streamer.bundle.tokenize import SourceTokenizers
    from streamer.network.heads import ModelMeta, MultiTaskModel
    from streamer.training.card import VariantCard

Profile = Literal["quick", "full", "tiny", "speed"]
WORK = WORK_DIR
# Written last: what the worker (streamer.bundle.locate) takes as "this build is done".
COMPLETE = COMPLETE_MARKER
T = TypeVar("T")

# The settings that change what the training steps produce (see the module docstring).
TRAINING_SETTINGS = frozenset({
    "data", "base", "seed", "val_fraction", "max_rows_per_dataset", "max_length", "pooling",
    "teacher", "teacher_train", "teacher_seeds", "selection_fraction", "student_layers",
    "student_train", "distill",
})
# Settings added after bundles were cached: left out of the fingerprint while at their
# defaults, so adding them did not invalidate those bundles.
LATER_SETTINGS = ("teacher_seeds", "selection_fraction")


class BuildError(RuntimeError):
    pass


class BuildConfig(BaseModel):
    """Every knob of a build; all but ``out``/``command`` feed the resume fingerprint."""

    profile: str
    name: str
    data: list[DatasetSpec]
    base: str
    out: Path
    seed: int = 13
    val_fraction: float = 0.1
    max_rows_per_dataset: int | None = None
    max_length: dict[str, int] = Field(default_factory=lambda: {"chat": 64, "news": 128})
    pooling: Pooling = "mean"
    teacher: bool = Field(True, description="False: train the students directly (no KD).")
    teacher_train: TrainConfig = Field(default_factory=TrainConfig)
    teacher_seeds: list[int] = Field(
        default_factory=list,
        description="Two or more: train one teacher per seed (data order and dropout; the "
        "heads start from the same weights) on the training rows minus a selection slice, "
        "and keep the one most accurate on that slice. The validation split never chooses.",
    )
    selection_fraction: float = Field(
        0.1, gt=0, lt=1,
        description="Share of each dataset's training rows (per label) held out to choose "
        "among teacher_seeds.",
    )
    student_layers: list[int] = Field(default_factory=lambda: [3, 2])
    student_train: TrainConfig = Field(default_factory=lambda: TrainConfig(lr=1e-4))
    distill: DistillConfig = Field(default_factory=DistillConfig)
    teacher_precisions: list[Precision] = Field(
        default_factory=lambda: list[Precision](["fp32", "int8", "fp16"])
    )
    student_precisions: list[Precision] = Field(
        default_factory=lambda: list[Precision](["int8", "fp16"])
    )
    int8_per_channel: bool = Field(
        True,
        description="INT8 weight scales per output channel rather than per tensor: same size "
        "and speed, and it kept the CLS-pooled teacher within tolerance where per tensor it "
        "was not (docs/BENCHMARKS.md).",
    )
    verify_rows: int = 128
    tolerances: dict[Precision, Tolerance] = Field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
    speed_single: int = 200
    speed_batches: int = 12
    speed_threads: int = 1
    eval_fp16_on_cpu: bool = False
    keep_work: bool = True
    command: str = "streamer.training.build.build_bundle"
    notes: list[str] = Field(default_factory=list, description="Extra lines for the card.")

    def fingerprint_inputs(self, training_only: bool = False) -> dict[str, Any]:
        """What :meth:`fingerprint` hashes: the settings (``training_only``: those in
        :data:`TRAINING_SETTINGS`) and the data files' size and modification time."""
        descriptive = {"out", "command", "keep_work", "name", "notes"}
        data = self.model_dump(mode="json", exclude=descriptive)
        for key in LATER_SETTINGS:
            if data[key] == type(self).model_fields[key].get_default(call_default_factory=True):
                del data[key]
        if training_only:
            data = {k: v for k, v in data.items() if k in TRAINING_SETTINGS}
        for spec in self.data:  # a changed data file means a different build
            st = spec.path.stat()
            data.setdefault("_files", []).append([str(spec.path), st.st_size, st.st_mtime_ns])
        return data

    def fingerprint(self, training_only: bool = False) -> str:
        """Hash of :meth:`fingerprint_inputs`."""
        data = self.fingerprint_inputs(training_only)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# One comparison on the build machine, same split and seed (its date: docs/BENCHMARKS.md).
# These figures travel into each quick bundle's card as a note; they are not re-measured.
QUICK_CHOICE = (
    "quick profile choice: a 2-layer model fine-tuned 1 epoch (273s build; INT8 sentiment "
    "acc 0.831 / F1 0.776, topic 0.979 / 0.937; 382 msg/s at batch 32) beat frozen 6-layer "
    "embeddings + logistic-regression heads (220s to embed and fit; sentiment 0.776 / 0.695, "
    "topic 0.964 / 0.883; serving 6 layers)"
)


def profile_config(
    profile: Profile,
    data_dir: Path,
    out: Path,
    base: str | None = None,
    layers: list[int] | None = None,
    seed: int = 13,
    threads: int = 2,
    epochs: float | None = None,
    command: str | None = None,
    pooling: Pooling | None = None,
) -> BuildConfig:
    """The settings behind ``--profile``; ``layers``/``epochs``/``pooling`` override the
    profile's.

    The full profile pools [CLS]: its teacher is more accurate on sentiment than a
    mean-pooled one (docs/BENCHMARKS.md), and the teacher's accuracy is a target of its
    own. Its students lose a little against mean-pooled ones, so the default variant is
    picked on measured accuracy, per head. The full teacher's seed alone moved the
    validation figure by more than a point, so the full profile trains three teachers and
    keeps the one a selection slice of the training data prefers. The other profiles pool
    the mean, as MiniLM was trained.
    """
    resolved = resolve_base(packaged_base(base))  # a registry name: fetched once
    specs = default_specs(data_dir)
    common: dict[str, Any] = {
        "profile": profile,
        "name": out.name,
        "data": specs,
        "base": resolved,
        "out": out,
        "seed": seed,
        "pooling": pooling or ("cls" if profile == "full" else "mean"),
        "command": command or f"build profile={profile}",
    }
    if profile == "full":
        cfg = BuildConfig(
            **common,
            teacher_train=TrainConfig(epochs=epochs or 3, lr=8e-5, seed=seed, threads=threads),
            teacher_seeds=[seed, seed + 8, seed + 16],
            student_layers=layers or [3, 2],
            student_train=TrainConfig(epochs=epochs or 3, lr=1e-4, seed=seed, threads=threads),
        )
    elif profile == "quick":
        # A 2-layer model fine-tuned directly (no teacher) for one epoch: more accurate than
        # frozen 6-layer embeddings + linear heads, and a third of the layers to serve.
        cfg = BuildConfig(
            **common,
            teacher=False,
            student_layers=layers or [2],
            student_train=TrainConfig(
                epochs=epochs or 1, lr=1.5e-4, head_lr=2e-3, seed=seed, threads=threads
            ),
            student_precisions=["int8"],
            speed_single=100,
            speed_batches=8,
            keep_work=False,
            notes=[QUICK_CHOICE],
        )
    elif profile in ("tiny", "speed"):
        # A few hundred rows and one epoch: every step runs for real, in minutes.
        few_rows: dict[str, Any] = {
            "max_rows_per_dataset": 100,
            "teacher_train": TrainConfig(epochs=epochs or 1, lr=1e-4, head_lr=3e-3,
                                         batch_size=16, seed=seed, threads=threads),
            "student_layers": layers or [2],
            "student_train": TrainConfig(epochs=epochs or 1, lr=2e-4, head_lr=3e-3,
                                         batch_size=16, seed=seed, threads=threads),
            "student_precisions": ["int8", "fp16"],
            "verify_rows": 32,
            # One epoch on 300 rows leaves near-tied probabilities, where INT8 rounding flips
            # more argmaxes than on a trained model; the diff limit stays the same.
            "tolerances": {**DEFAULT_TOLERANCES,
                           "int8": Tolerance(min_agreement=0.75, max_diff=0.5)},
            "speed_single": 20,
            "speed_batches": 2,
        }
        if profile == "tiny":
            # CI: short sequences as well.
            cfg = BuildConfig(
                **common, **few_rows,
                max_length={"chat": 32, "news": 48},
                teacher_precisions=["fp32", "int8"],
                eval_fp16_on_cpu=True,
            )
        else:
            # For speed measurements, not accuracy (scripts/gpu-check.sh): the serving
            # lengths (chat 64, news 128) and every variant `streamer bench models`
            # measures, the FP16 teacher (ONNX Runtime CUDA) and the teacher's checkpoint
            # (PyTorch FP16 + CUDA graphs) included.
            cfg = BuildConfig(
                **common, **few_rows,
                teacher_precisions=["fp32", "int8", "fp16"],
                notes=["speed profile: trained on a few hundred rows for one epoch, to "
                       "measure speed at the serving sequence lengths; its accuracy means "
                       "nothing"],
            )
    else:
        raise BuildError(f"unknown profile {profile!r}; use quick, full, tiny or speed")
    return cfg


def library_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("streamer", "torch", "transformers", "onnx", "onnxruntime", "tokenizers", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def is_complete(out: Path) -> bool:
    return (out / COMPLETE).is_file() and (out / MANIFEST_FILE).is_file()


class Builder:
    """Runs the steps of one :class:`BuildConfig`; see the module docstring."""

    def __init__(self, cfg: BuildConfig, reporter: Reporter = SILENT) -> None:
        self.cfg = cfg
        self.reporter = reporter
        self.out = cfg.out
        self.work = cfg.out / WORK
        self.fp = cfg.fingerprint()
        self.training_fp = cfg.fingerprint(training_only=True)
        self.steps_s: dict[str, float] = {}
        self._models: dict[str, tuple[MultiTaskModel, ModelMeta]] = {}
        self._split: SplitData | None = None
        self._tokenizers: SourceTokenizers | None = None

    # --- step machinery -------------------------------------------------------------------
    def _marker(self, name: str) -> Path:
        return self.work / "done" / f"{name}.json"

    def step(self, name: str, fn: Callable[[], T], training: bool = False) -> T:
        """Run ``fn`` unless its marker says it is done; return its (JSON-able) result.

        ``training``: the step depends on the training settings only.
        """
        marker = self._marker(name)
        fp = self.training_fp if training else self.fp
        if marker.is_file():
            saved = json.loads(marker.read_text("utf-8"))
            if saved.get("fingerprint") == fp:
                self.reporter.log(f"[dim]skip {name}: done in an earlier run[/]")
                self.steps_s[name] = float(saved.get("seconds", 0.0))
                return saved.get("result")
        self.reporter.log(f"[bold cyan]step[/] {name}")
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        self.steps_s[name] = seconds
        marker.parent.mkdir(parents=True, exist_ok=True)
        payload = result.model_dump(mode="json") if isinstance(result, BaseModel) else result
        write_text(
            marker,
            json.dumps({"fingerprint": fp, "seconds": seconds, "result": payload}, indent=2),
        )
        return result

    # --- state shared by steps ------------------------------------------------------------
    @property
    def split(self) -> SplitData:
        if self._split is None:
            self._split = SplitData.model_validate_json(
                (self.work / "split.json").read_text("utf-8")
            )
        return self._split

    def tokenizers(self) -> SourceTokenizers:
        """The bundle's tokenizer, read from tokenizer.json once per build."""
        if self._tokenizers is None:
            from streamer.bundle.tokenize import SourceTokenizers

            self._tokenizers = SourceTokenizers(self.out / TOKENIZER_FILE, self.cfg.max_length)
        return self._tokenizers

    def model(self, name: str) -> tuple[MultiTaskModel, ModelMeta]:
        if name not in self._models:
            from streamer.network.heads import load_model

            self._models[name] = load_model(self.work / MODELS_DIR / name)
        return self._models[name]

    def model_names(self) -> list[str]:
        names = ["teacher"] if self.cfg.teacher else []
        return names + [f"student{n}" for n in self.cfg.student_layers]

    def precisions(self, model: str) -> list[Precision]:
        return self.cfg.teacher_precisions if model == "teacher" else self.cfg.student_precisions

    # --- steps ----------------------------------------------------------------------------
    def do_split(self) -> dict[str, int]:
        split = load_split(
            self.cfg.data, self.cfg.seed, self.cfg.val_fraction, self.cfg.max_rows_per_dataset
        )
        self.work.mkdir(parents=True, exist_ok=True)
        write_text(self.work / "split.json", split.model_dump_json())
        self._split = split
        return {"train": len(split.train), "val": len(split.val)}

    def do_tokenizer(self) -> dict[str, int]:
        from streamer.network.encoder import tokenizer_json

        self.out.mkdir(parents=True, exist_ok=True)
        text, pad_id = tokenizer_json(self.cfg.base)
        write_text(self.out / TOKENIZER_FILE, text)
        self._tokenizers = None  # the file changed: read it again when next asked
        return {"pad_token_id": pad_id}

    def teacher_candidates(self) -> list[int]:
        """The seeds to choose a teacher from; empty: one teacher on every training row."""
        seeds = self.cfg.teacher_seeds
        return list(dict.fromkeys(seeds)) if len(set(seeds)) > 1 else []

    def selection_split(self) -> tuple[SplitData, list[Example]]:
        """(the split the candidates train on, the training rows held out to choose)."""
        kept, held = hold_out(self.split.train, self.cfg.selection_fraction, self.cfg.seed)
        return self.split.model_copy(update={"train": kept}), held

    def do_teacher(self, seed: int | None = None) -> list[dict[str, Any]]:
        """Train the teacher, or (``seed``) one candidate on the rows the selection leaves."""
        from streamer.network.heads import save_model
        from streamer.training.train import train_multitask

        split, train_cfg, name = self.split, self.cfg.teacher_train, "teacher"
        if seed is not None:
            split = self.selection_split()[0]
            train_cfg = train_cfg.model_copy(update={"seed": seed})
            name = f"teacher-s{seed}"
        model, meta, logs = train_multitask(
            split, self.tokenizers(), self.cfg.base, train_cfg, pooling=self.cfg.pooling,
            reporter=self.reporter, description=f"{name} (6L)",
            init_seed=self.cfg.teacher_train.seed,
        )
        self._save(model, meta, name, save_model)
        return [e.model_dump() for e in logs]

    def do_select_teacher(self) -> dict[str, Any]:
        """Score every candidate on the held-out training rows; the best becomes the teacher."""
        from streamer.network.heads import save_model
        from streamer.training.train import encode_examples, head_accuracy

        tokenizers = self.tokenizers()
        held = encode_examples(self.selection_split()[1], tokenizers, dict(self.split.labels))
        scores: dict[int, dict[str, float]] = {}
        for seed in self.teacher_candidates():
            model, _ = self.model(f"teacher-s{seed}")
            scores[seed] = head_accuracy(model, held, tokenizers.pad_id)
            self.reporter.log(
                f"  teacher seed {seed} on {len(held)} held-out training rows: "
                + ", ".join(f"{h} {a:.4f}" for h, a in scores[seed].items())
            )
        # The first listed seed wins ties, so the choice never depends on dict order.
        chosen = max(scores, key=lambda s: sum(scores[s].values()) / len(scores[s]))
        model, meta = self.model(f"teacher-s{chosen}")
        self._save(model, meta, "teacher", save_model)
        return TeacherSelection(rows=len(held), scores=scores, chosen=chosen).model_dump(
            mode="json"
        )

    def train_teacher(self) -> TeacherSelection | None:
        """The teacher steps: one training, or one per candidate seed and the selection."""
        seeds = self.teacher_candidates()
        if not seeds:
            self.step("train-teacher", self.do_teacher, training=True)
            return None
        for seed in seeds:
            self.step(
                f"train-teacher-s{seed}", lambda seed=seed: self.do_teacher(seed), training=True  # type: ignore[misc]
            )
        return TeacherSelection.model_validate(
            self.step("select-teacher", self.do_select_teacher, training=True)
        )

    def do_teacher_logits(self) -> dict[str, int]:
        import numpy as np

        from streamer.training.train import encode_examples, predict_logits

        teacher, _ = self.model("teacher")
        data = encode_examples(self.split.train, self.tokenizers(), dict(self.split.labels))
        logits = predict_logits(
            teacher, data.ids, self.tokenizers().pad_id, reporter=self.reporter,
            description="teacher soft labels",
        )
        with atomic_file(self.work / "teacher_logits.npz") as fh:
            np.savez(fh, **logits)  # type: ignore[arg-type]
        return {"rows": len(data)}

    def do_student(self, n_layers: int) -> list[dict[str, Any]]:
        from streamer.network.encoder import pick_layers
        from streamer.network.heads import save_model
        from streamer.training.train import encode_examples, train_multitask

        name = f"student{n_layers}"
        if not self.cfg.teacher:
            # No teacher (quick profile): fine-tune N of the base's layers on the labels.
            from streamer.network.encoder import load_encoder, num_layers

            total = num_layers(load_encoder(self.cfg.base))
            model, meta, logs = train_multitask(
                self.split, self.tokenizers(), self.cfg.base, self.cfg.student_train,
                layers=pick_layers(total, n_layers), pooling=self.cfg.pooling,
                reporter=self.reporter, description=f"{name} ({n_layers}L)",
            )
        else:
            import numpy as np

            from streamer.training.distill import distill

            teacher, tmeta = self.model("teacher")
            soft = dict(np.load(self.work / "teacher_logits.npz"))
            data = encode_examples(self.split.train, self.tokenizers(), dict(self.split.labels))
            model, meta, logs = distill(
                teacher, tmeta, soft, data, n_layers, self.cfg.student_train,
                self.cfg.distill, self.tokenizers().pad_id, reporter=self.reporter,
            )
        self._save(model, meta, name, save_model)
        return [e.model_dump() for e in logs]

    def _save(self, model: Any, meta: Any, name: str, save: Callable[..., None]) -> None:
        with atomic_dir(self.work / MODELS_DIR / name) as tmp:
            save(model, meta, tmp)
        self._models[name] = (model, meta)

    def do_export(self, name: str) -> dict[str, Any]:
        from streamer.training.export import export_onnx

        model, _ = self.model(name)
        raw = self.work / "onnx" / f"{name}-raw.onnx"
        outputs = export_onnx(model, raw)
        return {"file": str(raw), "outputs": outputs}

    def _dims(self, name: str) -> tuple[int, int]:
        model, _ = self.model(name)
        conf = model.encoder.config
        return int(conf.num_attention_heads), int(conf.hidden_size)

    def do_optimize(self, name: str) -> dict[str, Any]:
        from streamer.training.optimize import optimize_bert

        heads, hidden = self._dims(name)
        dst = self.work / "onnx" / f"{name}-fp32.onnx"
        report = optimize_bert(self.work / "onnx" / f"{name}-raw.onnx", dst, heads, hidden)
        if "fp32" in self.precisions(name):
            shutil.copyfile(dst, self.out / f"{name}-fp32.onnx")
        return report.model_dump()

    def do_quantize(self, name: str) -> dict[str, Any]:
        from streamer.training.quantize import convert_fp16, quantize_int8

        result: dict[str, Any] = {}
        if "int8" in self.precisions(name):
            quantize_int8(
                self.work / "onnx" / f"{name}-fp32.onnx", self.out / f"{name}-int8.onnx",
                per_channel=self.cfg.int8_per_channel,
            )
            result["int8"] = f"{name}-int8.onnx"
        if "fp16" in self.precisions(name):
            heads, hidden = self._dims(name)
            report = convert_fp16(
                self.work / "onnx" / f"{name}-raw.onnx", self.out / f"{name}-fp16.onnx",
                heads, hidden,
            )
            result["fp16"] = report.model_dump()
        return result

    def verify_ids(self) -> list[list[int]]:
        from streamer.training.verify import sample_rows

        val = self.split.val
        rows = sample_rows(len(val), self.cfg.verify_rows, self.cfg.seed)
        return list(
            self.tokenizers().encode([val[i].text for i in rows], [val[i].source for i in rows])
        )

    def do_verify(self, name: str) -> dict[str, Any]:
        from streamer.training.verify import torch_probs, verify_variant

        model, _ = self.model(name)
        ids = self.verify_ids()
        pad = self.tokenizers().pad_id
        reference = torch_probs(model, ids, pad)
        results: dict[str, Any] = {}
        for precision in self.precisions(name):
            res = verify_variant(
                model, self.out / f"{name}-{precision}.onnx", ids, pad, precision,
                self.cfg.tolerances[precision], reference,
            )
            results[precision] = res.model_dump()
            self.reporter.log(
                f"  verified {name}-{precision}: agreement {res.argmax_agreement}, "
                f"max diff { {h: round(d, 4) for h, d in res.max_prob_diff.items()} }"
                + (f" (skipped: {res.skipped})" if res.skipped else "")
            )
        return results

    def do_hf(self, name: str) -> HfFolder:
        """The model in Hugging Face layout beside the ONNX files (training/hf_export.py)."""
        from streamer.training.hf_export import export_hf

        model, meta = self.model(name)
        return export_hf(model, meta, name, self.out, self.cfg.base, self.cfg.max_length)

    def variants(self, verify: dict[str, dict[str, Any]]) -> list[VariantInfo]:
        from streamer.bundle.manifest import file_sha256

        out: list[VariantInfo] = []
        for name in self.model_names():
            _, meta = self.model(name)
            for precision in self.precisions(name):
                file = f"{name}-{precision}.onnx"
                path = self.out / file
                res = verify.get(name, {}).get(precision)
                out.append(
                    VariantInfo(
                        name=f"{name}-{precision}",
                        file=file,
                        sha256=file_sha256(path),
                        size_bytes=path.stat().st_size,
                        precision=precision,
                        device="cuda" if precision == "fp16" else "cpu",
                        role="teacher" if name == "teacher" else "student",
                        layers=len(meta.layers_from_base),
                        layers_from_base=meta.layers_from_base,
                        verify=VerifyResult.model_validate(res) if res else None,
                    )
                )
        return out

    def write_manifest(
        self, variants: list[VariantInfo], defaults: dict[Device, str], pad_id: int,
        notes: list[str], duration: float | None = None,
        selection: TeacherSelection | None = None, hf: list[HfFolder] | None = None,
    ) -> BundleManifest:
        split = self.split
        cfg = self.cfg
        epochs = {"teacher": cfg.teacher_train.epochs} if cfg.teacher else {}
        epochs.update({f"student{n}": cfg.student_train.epochs for n in cfg.student_layers})
        manifest = BundleManifest(
            format_version=FORMAT_VERSION,
            name=cfg.name,
            heads=[
                HeadInfo(name=h, labels=split.labels[h], output=f"{h}_probs")
                for h in ("sentiment", "topic")
            ],
            datasets=split.datasets,
            variants=variants,
            default_variant=defaults,
            max_length=cfg.max_length,
            pooling=cfg.pooling,
            tokenizer=TOKENIZER_FILE,
            pad_token_id=pad_id,
            build=BuildInfo(
                profile=cfg.profile,
                base=cfg.base,
                seed=cfg.seed,
                val_fraction=cfg.val_fraction,
                epochs=epochs,
                command=cfg.command,
                versions=library_versions(),
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                duration_s=duration,
                steps_s={k: round(v, 1) for k, v in self.steps_s.items()},
                train_rows=len(split.train),
                val_rows=len(split.val),
                notes=notes,
                teacher_selection=selection,
            ),
            hf=hf or [],
        )
        write_text(self.out / MANIFEST_FILE, manifest.model_dump_json(indent=2))
        return manifest

    def do_evaluate(self, variant: VariantInfo) -> dict[str, Any]:
        from streamer.score.onnx_scorer import OnnxScorer, cuda_available
        from streamer.training.card import VariantCard, evaluate, measure_speed, speed_sample

        card = VariantCard(
            name=variant.name, precision=variant.precision, device=variant.device,
            layers=variant.layers, size_bytes=variant.size_bytes, verify=variant.verify,
        )
        if variant.precision == "fp16" and not cuda_available() and not self.cfg.eval_fp16_on_cpu:
            card.note = "FP16 for CUDA; not evaluated on this CPU-only machine"
            return card.model_dump(mode="json")
        scorer = OnnxScorer(self.out, variant=variant.name, intra_op_threads=self.cfg.speed_threads)
        card.heads, card.datasets = evaluate(
            scorer, self.split.val, reporter=self.reporter, description=f"eval {variant.name}"
        )
        card.speed = measure_speed(
            scorer, speed_sample(self.split.val), self.cfg.speed_single, self.cfg.speed_batches,
            self.cfg.speed_threads,
        )
        if variant.precision == "fp16" and scorer.device == "cpu":
            card.note = "FP16 is built for CUDA; figures measured on the CPU provider"
        self.reporter.log(
            f"  {variant.name}: "
            + ", ".join(f"{h} acc {m.accuracy:.3f} F1 {m.macro_f1:.3f}"
                        for h, m in card.heads.items())
            + f"; {card.speed.batch1_msgs_per_s} msg/s b1, {card.speed.batch32_msgs_per_s} b32"
        )
        return card.model_dump(mode="json")

    # --- orchestration --------------------------------------------------------------------
    def run(self) -> Path:
        from streamer.training.card import VariantCard, build_card, write_card

        cfg = self.cfg
        if is_complete(self.out):
            saved = json.loads((self.out / COMPLETE).read_text("utf-8"))
            if saved.get("fingerprint") == self.fp:
                self.reporter.log(f"bundle at {self.out} is complete; nothing to do")
                return self.out
        (self.out / COMPLETE).unlink(missing_ok=True)
        import torch

        # Every step (training, soft labels, verification) shares the same thread budget.
        torch.set_num_threads(cfg.teacher_train.threads)
        start = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        self.step("split", self.do_split, training=True)
        pad_id = int(self.step("tokenizer", self.do_tokenizer, training=True)["pad_token_id"])
        selection: TeacherSelection | None = None
        if cfg.teacher:
            selection = self.train_teacher()
            self.step("teacher-logits", self.do_teacher_logits, training=True)
        for n in cfg.student_layers:
            label = "distill" if cfg.teacher else "train"
            self.step(
                f"{label}-student{n}", lambda n=n: self.do_student(n), training=True  # type: ignore[misc]
            )
        verify: dict[str, dict[str, Any]] = {}
        for name in self.model_names():
            self.step(f"export-{name}", lambda name=name: self.do_export(name))  # type: ignore[misc]
            self.step(f"optimize-{name}", lambda name=name: self.do_optimize(name))  # type: ignore[misc]
            self.step(f"quantize-{name}", lambda name=name: self.do_quantize(name))  # type: ignore[misc]
            verify[name] = self.step(f"verify-{name}", lambda name=name: self.do_verify(name))  # type: ignore[misc]
        hf = [
            HfFolder.model_validate(self.step(f"hf-{name}", lambda name=name: self.do_hf(name)))  # type: ignore[misc]
            for name in self.model_names()
        ]
        variants = self.variants(verify)
        notes = self.notes()
        provisional = provisional_defaults(variants)
        self.write_manifest(variants, provisional, pad_id, notes, selection=selection, hf=hf)
        cards = [
            VariantCard.model_validate(
                self.step(f"evaluate-{v.name}", lambda v=v: self.do_evaluate(v))  # type: ignore[misc]
            )
            for v in variants
        ]
        defaults = choose_defaults(variants, cards)
        duration = time.perf_counter() - start
        total = sum(self.steps_s.values())
        manifest = self.write_manifest(
            variants, defaults, pad_id, notes, duration=total, selection=selection, hf=hf
        )
        write_card(build_card(manifest, cards, cfg.name), self.out)
        write_text(
            self.out / COMPLETE,
            json.dumps({"fingerprint": self.fp, "seconds_this_run": duration, "seconds": total}),
        )
        if not cfg.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)
        self.reporter.log(f"[bold green]bundle ready[/] at {self.out} ({total:.0f}s of steps)")
        return self.out

    def notes(self) -> list[str]:
        cfg = self.cfg
        notes = list(cfg.notes)
        if not cfg.teacher:
            notes.append(
                "no teacher: the student layers were fine-tuned directly on the labels "
                "(layers kept from the base: see variants' layers_from_base)"
            )
        else:
            notes.append(
                f"students distilled from the teacher: KL at T={cfg.distill.temperature}, "
                f"alpha={cfg.distill.alpha} (all heads: {cfg.distill.all_heads}) + CE"
            )
        if "int8" in cfg.teacher_precisions + cfg.student_precisions:
            scales = "per output channel" if cfg.int8_per_channel else "per tensor"
            notes.append(f"INT8: ONNX Runtime dynamic quantization, weight scales {scales}")
        if cfg.max_rows_per_dataset:
            notes.append(f"training rows capped at {cfg.max_rows_per_dataset} per dataset")
        return notes


def provisional_defaults(variants: list[VariantInfo]) -> dict[Device, str]:
    """Before evaluation: the smallest INT8 student for CPU, the teacher's FP16 for CUDA."""
    cpu = [v for v in variants if v.device == "cpu"]
    int8 = [v for v in cpu if v.precision == "int8"] or cpu
    out: dict[Device, str] = {"cpu": min(int8, key=lambda v: (v.size_bytes, v.name)).name}
    fp16 = [v for v in variants if v.precision == "fp16"]
    if fp16:
        out["cuda"] = max(fp16, key=lambda v: v.layers).name
    return out


def _model_of(v: VariantInfo) -> str:
    return v.name.rsplit("-", 1)[0]


def _mean_acc(card: VariantCard) -> float | None:
    if not card.heads:
        return None
    return sum(m.accuracy for m in card.heads.values()) / len(card.heads)


def choose_defaults(
    variants: list[VariantInfo], cards: list[VariantCard], within: float = 0.015
) -> dict[Device, str]:
    """CPU: the fastest INT8 variant within ``within`` of the best evaluated variant's
    accuracy on every head; CUDA: the most accurate model's FP16 (GPU time is cheap)."""
    by_name = {c.name: c for c in cards}
    scored = [(v, _mean_acc(by_name[v.name])) for v in variants if v.name in by_name]
    evaluated = [(v, a) for v, a in scored if a is not None]
    if not evaluated:
        return provisional_defaults(variants)
    best: dict[str, float] = {}
    for v, _ in evaluated:
        for head, metrics in by_name[v.name].heads.items():
            best[head] = max(best.get(head, 0.0), metrics.accuracy)

    def close(v: VariantInfo) -> bool:
        heads = by_name[v.name].heads
        return all(h in heads and heads[h].accuracy >= b - within for h, b in best.items())

    cpu_pool = [(v, a) for v, a in evaluated if v.device == "cpu" and v.precision == "int8"] or [
        (v, a) for v, a in evaluated if v.device == "cpu"
    ]
    good = [(v, a) for v, a in cpu_pool if close(v)] or [max(cpu_pool, key=lambda t: t[1])]

    def speed(v: VariantInfo) -> float:
        s = by_name[v.name].speed
        return s.batch32_msgs_per_s if s else 0.0

    out: dict[Device, str] = {"cpu": max(good, key=lambda t: (speed(t[0]), t[1]))[0].name}
    fp16 = [v for v in variants if v.precision == "fp16"]
    if fp16:
        model_acc: dict[str, float] = {}  # best accuracy of any precision of each model
        for v, a in evaluated:
            m = _model_of(v)
            model_acc[m] = max(model_acc.get(m, 0.0), a)
        out["cuda"] = max(fp16, key=lambda v: (model_acc.get(_model_of(v), 0.0), v.layers)).name
    return out


def build_bundle(cfg: BuildConfig, reporter: Reporter = SILENT) -> Path:
    """Build (or resume) the bundle described by ``cfg``; returns its directory."""
    require_files(cfg.data)  # at once, not minutes in
    with library_bars_off():
        return Builder(cfg, reporter).run()
