"""Regenerate the README's configuration table from the Settings model."""

from __future__ import annotations

import re
from pathlib import Path

from streamer.cli.config_cmd import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    text = README.read_text("utf-8")
    block = f"<!-- settings:start -->\n{markdown_table()}\n<!-- settings:end -->"
    text = re.sub(r"<!-- settings:start -->.*?<!-- settings:end -->", lambda _: block, text,
                  flags=re.S)
    README.write_text(text, "utf-8")


if __name__ == "__main__":
    main()
