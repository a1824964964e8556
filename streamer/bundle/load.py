"""Load and validate a bundle directory; every failure is a ``BundleError`` saying what to do.

A bundle is a directory holding ``manifest.json``, ``tokenizer.json``, one ``.onnx`` file
per variant and the model card. Checks, cheapest first: the manifest exists, parses and has
this reader's format version; every file it names exists with the recorded size (and
sha256 for the variants asked for); and, when a session is opened, the ONNX outputs have
exactly as many columns as the manifest has labels. No torch here: the worker imports it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from streamer.bundle.errors import BundleError
from streamer.bundle.identity import content_id
from streamer.bundle.manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    BundleManifest,
    Device,
    VariantInfo,
    file_sha256,
)

if TYPE_CHECKING:
    import onnxruntime as ort

REBUILD_HINT = "rebuild it with `streamer models build --out {dir}` (or delete it to rebuild)"


def _hint(path: Path) -> str:
    return REBUILD_HINT.format(dir=path)


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: BundleManifest

    @property
    def tokenizer_path(self) -> Path:
        return self.path / self.manifest.tokenizer

    @cached_property
    def id(self) -> str:
        """The content hash naming this model (``streamer.bundle.identity``)."""
        return content_id(self.manifest, self.tokenizer_path)

    def variant_path(self, name: str) -> Path:
        return self.path / self.variant(name).file

    def variant(self, name: str) -> VariantInfo:
        try:
            return self.manifest.variant(name)
        except KeyError:
            names = [v.name for v in self.manifest.variants]
            raise BundleError(
                f"bundle {self.path} has no variant {name!r}; it has {names}"
            ) from None

    def choose_variant(self, variant: str = "auto", device: Device = "cpu") -> VariantInfo:
        """``auto``: the manifest's default for ``device`` (CPU default if none for it)."""
        if variant != "auto":
            return self.variant(variant)
        name = self.manifest.default_variant.get(device) or self.manifest.default_variant.get(
            "cpu"
        )
        if name is None:
            name = min(self.manifest.variants, key=lambda v: v.size_bytes).name
        return self.variant(name)

    def open_session(
        self,
        name: str,
        providers: Sequence[str | tuple[str, dict[str, str]]] = ("CPUExecutionProvider",),
        intra_op_threads: int = 1,
    ) -> ort.InferenceSession:
        """An ONNX Runtime session for a variant, its outputs checked against the labels."""
        import onnxruntime as ort

        info = self.variant(name)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(
                str(self.path / info.file), opts, providers=list(providers)
            )
        except Exception as exc:  # onnxruntime raises several unrelated types
            raise BundleError(
                f"ONNX Runtime cannot load {info.file} of bundle {self.path}: {exc}; "
                + _hint(self.path)
            ) from exc
        check_outputs(self, info, {o.name: o.shape for o in session.get_outputs()})
        return session


def check_outputs(bundle: Bundle, info: VariantInfo, shapes: dict[str, Any]) -> None:
    """Each head's output exists and has one column per label of that head."""
    for head in bundle.manifest.heads:
        if head.output not in shapes:
            raise BundleError(
                f"{info.file} in bundle {bundle.path} has no output {head.output!r} for head "
                f"{head.name!r} (outputs: {sorted(shapes)}); {_hint(bundle.path)}"
            )
        width = shapes[head.output][-1]
        if isinstance(width, int) and width != len(head.labels):
            raise BundleError(
                f"label count mismatch in bundle {bundle.path}: head {head.name!r} lists "
                f"{len(head.labels)} labels {head.labels} but {info.file} outputs {width} "
                f"columns; the manifest and model come from different builds - "
                + _hint(bundle.path)
            )


def read_manifest(path: Path) -> BundleManifest:
    """Parse ``manifest.json``, checking the format version before anything else."""
    mpath = path / MANIFEST_FILE
    if not path.is_dir():
        raise BundleError(f"bundle directory {path} does not exist; {_hint(path)}")
    if not mpath.is_file():
        raise BundleError(f"bundle {path} has no {MANIFEST_FILE} (missing file); {_hint(path)}")
    try:
        raw = json.loads(mpath.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{mpath} is not valid JSON ({exc}); {_hint(path)}") from exc
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise BundleError(
            f"bundle {path} has manifest format version {version!r}; this streamer reads "
            f"version {FORMAT_VERSION}. Rebuild the bundle with this version "
            f"(`streamer models build --out {path}`) or use the streamer release that built it"
        )
    try:
        return BundleManifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{mpath} is not a valid manifest: {exc}; {_hint(path)}") from exc


def load_bundle(path: Path | str, verify: Iterable[str] | None = None) -> Bundle:
    """Validate the bundle at ``path``.

    ``verify``: variant names whose sha256 is checked (``None``: all). Every variant file
    is still checked for presence and size: a truncated copy fails fast and cheaply.
    """
    path = Path(path).expanduser()
    manifest = read_manifest(path)
    bundle = Bundle(path=path, manifest=manifest)
    tok = path / manifest.tokenizer
    if not tok.is_file():
        raise BundleError(f"bundle {path} is missing file {manifest.tokenizer}; {_hint(path)}")
    to_hash = {v.name for v in manifest.variants} if verify is None else set(verify)
    for v in manifest.variants:
        f = path / v.file
        if not f.is_file():
            raise BundleError(
                f"bundle {path} is missing file {v.file} (variant {v.name}); {_hint(path)}"
            )
        size = f.stat().st_size
        if size != v.size_bytes:
            raise BundleError(
                f"{v.file} in bundle {path} is {size} bytes, the manifest says {v.size_bytes} "
                f"(truncated or replaced); {_hint(path)}"
            )
        if v.name in to_hash and file_sha256(f) != v.sha256:
            raise BundleError(
                f"sha256 mismatch for {v.file} in bundle {path}: the file is not the one the "
                f"manifest describes (corrupted or replaced); {_hint(path)}"
            )
    for name in to_hash - {v.name for v in manifest.variants}:
        bundle.variant(name)  # raises: names the variants that exist
    return bundle
