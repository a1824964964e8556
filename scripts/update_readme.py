"""Regenerate the settings table in docs/SETTINGS.md from the Settings model.

The table sits between the ``settings:start`` and ``settings:end`` markers; the rest of the
file is hand-written. tests/test_readme.py fails while the table is stale.
(The script keeps its name from when the table lived in the README.)
"""

from __future__ import annotations

import re
from pathlib import Path

from streamer.cli.config_cmd import markdown_table

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_DOC = ROOT / "docs" / "SETTINGS.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def main() -> None:
    text = SETTINGS_DOC.read_text("utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{SETTINGS_DOC}: the {START} ... {END} markers are missing")
    block = f"{START}\n{markdown_table()}\n{END}"
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    SETTINGS_DOC.write_text(text, "utf-8")


if __name__ == "__main__":
    main()
