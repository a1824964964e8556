"""The README documents every setting (its table is generated from the Settings model)."""

from __future__ import annotations

from pathlib import Path

from streamer.cli.config_cmd import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_configuration_table_is_current() -> None:
    assert markdown_table() in README.read_text("utf-8"), (
        "README configuration table is stale: run `python scripts/update_readme.py`"
    )
