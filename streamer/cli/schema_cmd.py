"""``streamer schema export DIR``."""

from __future__ import annotations

from pathlib import Path

import click

from streamer.cli.common import console
from streamer.schemas.export import export_schemas


@click.group()
def schema() -> None:
    """JSON Schemas of the records on every topic."""


@schema.command("export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
def export(out: Path) -> None:
    """Write one JSON Schema file per record type into OUT."""
    for path in export_schemas(out):
        console.print(f"wrote {path}")
