"""Which variants ``streamer bench pipeline`` measures: names parsed into worker settings."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from streamer.bench.pipeline.errors import BenchError

DEFAULT_VARIANTS = ("naive", "adaptive", "fixed-8x5ms", "fixed-32x20ms", "fixed-64x50ms")
QUICK_VARIANTS = ("naive", "adaptive", "fixed-32x20ms")
_FIXED = re.compile(r"^fixed-(\d+)x(\d+(?:\.\d+)?)ms$")


@dataclass(frozen=True)
class Variant:
    name: str
    kind: Literal["naive", "ours"]
    label: str
    env: dict[str, str] = field(default_factory=dict)


def variant(name: str, latency_target_ms: float = 100.0) -> Variant:
    """``naive``, ``adaptive`` or ``fixed-<max size>x<max wait ms>ms``."""
    if name == "naive":
        return Variant(name, "naive", "transformers PyTorch FP32, one message per call")
    if name == "adaptive":
        return Variant(name, "ours", f"adaptive micro-batching, target {latency_target_ms:g} ms",
                       {"STREAMER_BATCH_MODE": "adaptive",
                        "STREAMER_LATENCY_TARGET_MS": f"{latency_target_ms:g}"})
    m = _FIXED.match(name)
    if m is None:
        raise BenchError(f"unknown variant {name!r}: use naive, adaptive or fixed-SIZExWAITms "
                         "(e.g. fixed-32x20ms)")
    size, wait_ms = int(m.group(1)), float(m.group(2))
    return Variant(name, "ours", f"fixed batches: up to {size}, wait up to {wait_ms:g} ms",
                   {"STREAMER_BATCH_MODE": "fixed", "STREAMER_BATCH_MAX_SIZE": str(size),
                    "STREAMER_BATCH_MAX_WAIT_S": f"{wait_ms / 1000:g}"})
