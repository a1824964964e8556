"""A bundle's id: a hash of what decides its scores, so the id names the model itself.

Hashed: each variant's sha256 (the manifest records them, so no model file is read here),
the tokenizer file, and the manifest fields that change a score (heads and their label
order, truncation, pooling, padding, inputs, the default variants). Not hashed: the build's
record (dates, timings, commands, notes), the card and the directory's name. Two copies
of one bundle share an id; a rebuild with other weights, labels or truncation gets another.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from streamer.bundle.manifest import BundleManifest, file_sha256

ID_HEX_DIGITS = 16  # 64 bits: plenty to tell the bundles of one deployment apart


def content_id(manifest: BundleManifest, tokenizer: Path) -> str:
    """The bundle id (16 hex digits) of ``manifest`` with its ``tokenizer.json``."""
    essentials = {
        "format_version": manifest.format_version,
        "heads": [h.model_dump() for h in manifest.heads],
        "variants": sorted(
            (v.name, v.sha256, v.precision, v.device) for v in manifest.variants
        ),
        "default_variant": dict(sorted(manifest.default_variant.items())),
        "max_length": dict(sorted(manifest.max_length.items())),
        "pooling": manifest.pooling,
        "pad_token_id": manifest.pad_token_id,
        "inputs": manifest.inputs,
        "tokenizer": file_sha256(tokenizer),
    }
    blob = json.dumps(essentials, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:ID_HEX_DIGITS]
