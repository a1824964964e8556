"""The docs stay true to the code: docs/SETTINGS.md documents every setting (its table is
generated from the Settings model), and every relative link in README.md and docs/ leads to
a file (and heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamer.cli.config_cmd import markdown_table

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETTINGS_DOC = ROOT / "docs" / "SETTINGS.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_settings_table_is_current() -> None:
    assert markdown_table() in SETTINGS_DOC.read_text("utf-8"), (
        "docs/SETTINGS.md settings table is stale: run `python scripts/update_readme.py`"
    )


def test_readme_points_to_the_settings() -> None:
    assert "docs/SETTINGS.md" in README.read_text("utf-8")


def _anchors(doc: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces -> hyphens."""
    text = _FENCE.sub("", doc.read_text("utf-8"))
    out = set()
    for heading in re.findall(r"^#+\s+(.*?)\s*$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    text = _FENCE.sub("", doc.read_text("utf-8"))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists() or (
                anchor and dest.suffix == ".md" and anchor not in _anchors(dest)):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: links to nothing: {broken}"
