"""Packaged base encoders, obtained offline: BERT ONNX exports that langchain4j publishes as
jars on Maven Central, converted once into Hugging Face folders.

Machines that cannot reach the Hugging Face hub can still reach Maven Central (the local
Kafka's jars come from there too), so ``streamer models build --base bge-small-en-v1.5``
works on a fresh machine: ``mvn`` downloads the jar into its local repository (~/.m2, which
CI caches), its sha256 is checked against the registry, the ONNX file and tokenizer are
converted (training/onnx_bert.py) and compared with onnxruntime.

Layout: ``<cache_dir>/encoders/<name>/`` holds config.json, model.safetensors, the tokenizer
files, README.md (licence front matter), provenance.json and, written last, ``COMPLETE``
(a fingerprint of the registry entry and converter: changing either converts again).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from streamer.atomic import atomic_dir, file_lock
from streamer.bundle.manifest import file_sha256
from streamer.network.encoder import EncoderError, Pooling
from streamer.settings import get_settings
from streamer.training.onnx_bert import BertShape

ENCODERS_DIR = "encoders"
MARKER = "COMPLETE"
PROVENANCE = "provenance.json"
# Bump when the conversion's output changes: cached folders are then converted again.
CONVERTER_VERSION = 1
# fp32 on both sides: the same arithmetic in another order stays within a few 1e-6.
TOLERANCE = 1e-4
_MVN_TIMEOUT_S = 1800
# Different lengths, so padding and the attention mask are part of the comparison.
CHECK_TEXTS = (
    "Shares of Acme Corp fell 5% after the company cut its full-year revenue guidance.",
    "The central bank kept interest rates unchanged, citing persistent inflation.",
    "$TSLA to the moon",
)


class PackagedEncoder(BaseModel):
    """One registry entry: where the jar is, what is in it, and under which terms."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$", description="--base NAME")
    upstream: str = Field(description="Hugging Face id of the original model.")
    onnx_export: str = Field(description="Hugging Face id of the ONNX export the jar ships.")
    maven: str = Field(pattern=r"^[\w.-]+:[\w.-]+:[\w.-]+$", description="group:artifact:version")
    jar_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    onnx_member: str = Field(pattern=r"\.onnx$")
    tokenizer_member: str = Field(pattern=r"tokenizer\.json$")
    licence: str = Field(description="SPDX id of the model weights' licence (upstream card).")
    jar_licence: str = Field(description="SPDX id the jar's pom declares (the packaging).")
    pooling: Pooling = Field(description="The sentence vector the model was trained with.")
    note: str = ""

    @property
    def jar_name(self) -> str:
        _, artifact, version = self.maven.split(":")
        return f"{artifact}-{version}.jar"

    def fingerprint(self) -> str:
        data = f"{self.model_dump_json()}|converter={CONVERTER_VERSION}"
        return hashlib.sha256(data.encode()).hexdigest()[:16]


_LANGCHAIN4J = "dev.langchain4j:langchain4j-embeddings"
# Upstream cards (BAAI, intfloat) say MIT; the langchain4j poms say Apache-2.0 for the jar.
ENCODERS: dict[str, PackagedEncoder] = {
    e.name: e
    for e in (
        PackagedEncoder(
            name="bge-small-en-v1.5",
            upstream="BAAI/bge-small-en-v1.5",
            onnx_export="Xenova/bge-small-en-v1.5",
            maven=f"{_LANGCHAIN4J}-bge-small-en-v15:1.20.0-beta30",
            jar_sha256="30ab2f7b31669e67a7867574032f16e2a7afd6a490348b3164ceaf5c628222b6",
            onnx_member="bge-small-en-v1.5.onnx",
            tokenizer_member="bge-small-en-v1.5-tokenizer.json",
            licence="MIT",
            jar_licence="Apache-2.0",
            pooling="cls",
        ),
        PackagedEncoder(
            name="e5-small-v2",
            upstream="intfloat/e5-small-v2",
            onnx_export="Xenova/e5-small-v2",
            maven=f"{_LANGCHAIN4J}-e5-small-v2:1.17.0-beta27",
            jar_sha256="b6856bf12ace0396a9b7daab12450732496c790547190a2f80531bffc3ab3368",
            onnx_member="e5-small-v2.onnx",
            tokenizer_member="e5-small-v2-tokenizer.json",
            licence="MIT",
            jar_licence="Apache-2.0",
            pooling="mean",
            note="trained on 'query: ' / 'passage: ' prefixed text",
        ),
    )
}


class ConversionCheck(BaseModel):
    output: str = "last_hidden_state"
    texts: int
    max_abs_diff: float
    tolerance: float


class EncoderProvenance(BaseModel):
    """provenance.json: what was downloaded, what was made of it, and how it was checked."""

    entry: PackagedEncoder
    members_sha256: dict[str, str] = Field(description="Jar member -> sha256.")
    files_sha256: dict[str, str] = Field(description="Written file -> sha256.")
    shape: BertShape
    check: ConversionCheck
    converter_version: int
    libraries: dict[str, str]
    created: datetime


def encoder_entry(name: str) -> PackagedEncoder:
    entry = ENCODERS.get(name)
    if entry is None:
        raise EncoderError(f"no packaged encoder {name!r}; known: {', '.join(ENCODERS)}")
    return entry


def encoder_dir(name: str, cache_dir: Path) -> Path:
    return cache_dir / ENCODERS_DIR / name


def is_fetched(entry: PackagedEncoder, cache_dir: Path) -> bool:
    try:
        marker = (encoder_dir(entry.name, cache_dir) / MARKER).read_text().strip()
    except OSError:
        return False
    return marker == entry.fingerprint()


def read_provenance(name: str, cache_dir: Path) -> EncoderProvenance | None:
    """The provenance of a fetched encoder (None when not fetched or outdated)."""
    entry = encoder_entry(name)
    if not is_fetched(entry, cache_dir):
        return None
    path = encoder_dir(name, cache_dir) / PROVENANCE
    return EncoderProvenance.model_validate_json(path.read_text("utf-8"))


def packaged_base(base: str | None, cache_dir: Path | None = None) -> str | None:
    """The fetched folder when ``base`` names a packaged encoder (and is not a local
    directory), else ``base`` unchanged; ``cache_dir`` defaults to the settings'."""
    if base is None or base not in ENCODERS or Path(base).expanduser().is_dir():
        return base
    return str(fetch_encoder(base, cache_dir or get_settings().paths.cache_dir))


def fetch_encoder(name: str, cache_dir: Path) -> Path:
    """``<cache_dir>/encoders/<name>/``, downloaded and converted on first use.

    A file lock keeps two processes from converting at once; the folder is built beside
    its final place and renamed into it, so readers never see half of it.
    """
    entry = encoder_entry(name)
    target = encoder_dir(name, cache_dir)
    if is_fetched(entry, cache_dir):
        return target
    mvn = _maven()  # fail before taking the lock, with what to install
    with file_lock(target.parent / f".{name}.lock"):
        if is_fetched(entry, cache_dir):  # another process converted it while we waited
            return target
        with (
            tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}.jar.") as scratch,
            atomic_dir(target) as out,
        ):
            _build(entry, mvn, Path(scratch), out)
    return target


def _maven() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EncoderError(
            "Maven (mvn) not found; it downloads packaged encoders from Maven Central. "
            "On Debian/Ubuntu: apt-get install -y maven, or pass --base with a local model "
            "directory"
        )
    java_home = os.environ.get("JAVA_HOME")
    in_home = bool(java_home) and Path(java_home or "", "bin", "java").is_file()
    if shutil.which("java") is None and not in_home:
        raise EncoderError(
            "Java not found; Maven needs it. On Debian/Ubuntu: apt-get install -y "
            "openjdk-17-jre-headless (or set JAVA_HOME)"
        )
    return mvn


def _download(entry: PackagedEncoder, mvn: str, dest: Path) -> Path:
    """The jar, copied out of Maven's local repository (~/.m2, downloaded there if absent)."""
    cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "dependency:copy",
           f"-Dartifact={entry.maven}", f"-DoutputDirectory={dest}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              timeout=_MVN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise EncoderError(f"mvn timed out downloading {entry.maven}") from exc
    jar = dest / entry.jar_name
    if proc.returncode != 0 or not jar.is_file():
        # Maven colours some lines even in batch mode; keep the message plain.
        plain = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
        tail = "\n".join(line for line in plain.splitlines()[-20:] if line.strip())
        raise EncoderError(
            f"mvn could not download {entry.maven} (exit {proc.returncode}). Check access to "
            f"Maven Central (or the mirror in ~/.m2/settings.xml).\n{tail}"
        )
    return jar


def _check_sha256(jar: Path, entry: PackagedEncoder) -> None:
    digest = file_sha256(jar)
    if digest != entry.jar_sha256:
        raise EncoderError(
            f"{entry.maven}: the jar's sha256 is {digest}, the registry expects "
            f"{entry.jar_sha256}; refusing it. If Maven's copy is damaged, delete it from "
            "~/.m2/repository and retry; if the artifact really changed, review it and update "
            "streamer/training/encoders.py"
        )


def _extract(jar: Path, entry: PackagedEncoder, dest: Path) -> tuple[Path, Path]:
    """The ONNX file and tokenizer.json, out of the jar."""
    paths = []
    with zipfile.ZipFile(jar) as archive:
        for member in (entry.onnx_member, entry.tokenizer_member):
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise EncoderError(
                    f"{jar.name} has no {member}; the registry entry is wrong") from None
            path = dest / Path(member).name  # the base name only: no path from the archive
            with archive.open(info) as src, path.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            paths.append(path)
    return paths[0], paths[1]


def _readme(entry: PackagedEncoder) -> str:
    # The front matter is the Hugging Face card's; build provenance reads its licence.
    return (
        f"---\nlicense: {entry.licence.lower()}\nbase_model: {entry.upstream}\n"
        f"library_name: transformers\n---\n\n"
        f"# {entry.name}\n\n"
        f"{entry.upstream} ({entry.licence} licence) as a BertModel folder, converted by "
        f"streamer/training/encoders.py from the ONNX export {entry.onnx_export} packaged in "
        f"the Maven Central jar {entry.maven} ({entry.jar_licence}, per its pom). No pooler "
        f"weights: the export has none. Trained with {entry.pooling} pooling"
        f"{'; ' + entry.note if entry.note else ''}.\n\n"
        "provenance.json records the checksums and the conversion check.\n"
    )


def _libraries() -> dict[str, str]:
    return {lib: metadata.version(lib) for lib in ("onnx", "onnxruntime", "torch", "transformers")}


def _build(entry: PackagedEncoder, mvn: str, scratch: Path, out: Path) -> None:
    """Download, check, convert and compare into ``out``; the marker comes last."""
    from streamer.training.onnx_bert import convert, max_abs_diff

    jar = _download(entry, mvn, scratch)
    _check_sha256(jar, entry)
    onnx_path, tokenizer_path = _extract(jar, entry, scratch)
    shape = convert(onnx_path, tokenizer_path, out)
    diff = max_abs_diff(out, onnx_path, CHECK_TEXTS)
    if not diff < TOLERANCE:  # also catches NaN
        raise EncoderError(
            f"{entry.name}: the converted model differs from the ONNX graph by {diff:.3g} "
            f"(limit {TOLERANCE}); the conversion is wrong for this export"
        )
    (out / "README.md").write_text(_readme(entry), encoding="utf-8")
    provenance = EncoderProvenance(
        entry=entry,
        members_sha256={entry.onnx_member: file_sha256(onnx_path),
                        entry.tokenizer_member: file_sha256(tokenizer_path)},
        files_sha256={p.name: file_sha256(p) for p in sorted(out.iterdir())},
        shape=shape,
        check=ConversionCheck(texts=len(CHECK_TEXTS), max_abs_diff=diff, tolerance=TOLERANCE),
        converter_version=CONVERTER_VERSION,
        libraries=_libraries(),
        created=datetime.now(UTC),
    )
    (out / PROVENANCE).write_text(provenance.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / MARKER).write_text(entry.fingerprint() + "\n")
