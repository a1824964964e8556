"""Which variants ``streamer bench pipeline`` measures: names parsed into worker settings.

``naive``: the naive Faust agent; ``adaptive`` and ``fixed-SIZExWAITms``: this project's
worker; ``quix`` and ``quix-SIZExWAITms``: the Quix Streams peer (``streamer.bench.peer``),
checkpointing (its batching) every SIZE messages or WAIT ms, whichever comes first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from streamer.bench.pipeline.errors import BenchError

DEFAULT_VARIANTS = ("naive", "adaptive", "fixed-8x5ms", "fixed-32x20ms", "fixed-64x50ms")
QUICK_VARIANTS = ("naive", "adaptive", "fixed-32x20ms")
# Added to the defaults when Quix Streams is installed (the `peer` extra).
PEER_VARIANT = "quix"
_FIXED = re.compile(r"^fixed-(\d+)x(\d+(?:\.\d+)?)ms$")
_QUIX = re.compile(r"^quix(?:-(\d+)x(\d+(?:\.\d+)?)ms)?$")
# The peer's checkpoint when its name gives none: the batching of the fixed setting with
# the highest capacity so far (fixed-64x50ms, docs/BENCHMARKS.md).
QUIX_COMMIT_EVERY, QUIX_COMMIT_MS = 64, 50.0


@dataclass(frozen=True)
class Variant:
    name: str
    kind: Literal["naive", "ours", "peer"]
    label: str
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # the peer's command-line options


def default_variants(quick: bool) -> tuple[list[str], str | None]:
    """The variants a run without ``--variants`` measures, and, when the Quix Streams peer
    is left out because its package is missing, a line saying how to add it."""
    from streamer.bench.peer import INSTALL_HINT, quix_version

    names = list(QUICK_VARIANTS if quick else DEFAULT_VARIANTS)
    if quix_version() is None:
        return names, f"the Quix Streams peer ({PEER_VARIANT}) was left out: {INSTALL_HINT}"
    return [*names[:2], PEER_VARIANT, *names[2:]], None


def variant(name: str, latency_target_ms: float = 100.0) -> Variant:
    """``naive``, ``adaptive``, ``fixed-<max size>x<max wait ms>ms`` or ``quix`` /
    ``quix-<commit every>x<commit interval ms>ms``."""
    if (q := _QUIX.match(name)) is not None:
        every = int(q.group(1)) if q.group(1) else QUIX_COMMIT_EVERY
        wait_ms = float(q.group(2)) if q.group(2) else QUIX_COMMIT_MS
        if every < 1 or wait_ms <= 0:
            raise BenchError(f"{name!r}: the checkpoint needs at least 1 message and more "
                             "than 0 ms")
        return Variant(name, "peer", f"Quix Streams, the worker's ONNX model on each checkpoint's "
                       f"batches: every {every} messages or {wait_ms:g} ms",
                       args=("--commit-every", str(every),
                             "--commit-interval-s", f"{wait_ms / 1000:g}"))
    if name == "naive":
        return Variant(name, "naive", "transformers PyTorch FP32, one message per call")
    if name == "adaptive":
        return Variant(name, "ours", f"adaptive micro-batching, target {latency_target_ms:g} ms",
                       {"STREAMER_BATCH_MODE": "adaptive",
                        "STREAMER_LATENCY_TARGET_MS": f"{latency_target_ms:g}"})
    m = _FIXED.match(name)
    if m is None:
        raise BenchError(f"unknown variant {name!r}: use naive, adaptive, fixed-SIZExWAITms "
                         "(e.g. fixed-32x20ms) or quix[-SIZExWAITms] (the Quix Streams peer)")
    size, wait_ms = int(m.group(1)), float(m.group(2))
    return Variant(name, "ours", f"fixed batches: up to {size}, wait up to {wait_ms:g} ms",
                   {"STREAMER_BATCH_MODE": "fixed", "STREAMER_BATCH_MAX_SIZE": str(size),
                    "STREAMER_BATCH_MAX_WAIT_S": f"{wait_ms / 1000:g}"})
