"""``streamer config``: every setting, its environment variable, default and current value."""

from __future__ import annotations

import click
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.table import Table

from streamer.cli.common import console, settings_with
from streamer.settings import Settings


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "(computed)"
    if info.default is PydanticUndefined or info.default is None:
        return ""
    return str(info.default)


def markdown_table() -> str:
    """One table per section: each field, its variable, default and meaning."""
    lines: list[str] = []
    section = ""
    for path, env, info, _ in Settings(_env_file=None).variables():
        if path.split(".")[0] != section:
            section = path.split(".")[0]
            lines += ["", f"### `settings.{section}`", "",
                      "| field | environment variable | default | meaning |",
                      "|---|---|---|---|"]
        lines.append(f"| `{path.split('.', 1)[1]}` | `{env}` | `{default_text(info)}` | "
                     f"{info.description or ''} |")
    return "\n".join(lines[1:])


@click.command()
@click.option("--markdown", is_flag=True, help="Print the settings table of docs/SETTINGS.md.")
def config(markdown: bool) -> None:
    """Show every setting with its environment variable and current value."""
    if markdown:
        click.echo(markdown_table())
        return
    current = settings_with()
    t = Table(title="Settings (environment variable -> current value)")
    for col in ("setting", "environment variable", "value", "meaning"):
        t.add_column(col)
    for path, env, info, value in current.variables():
        shown = "********" if isinstance(value, SecretStr) else str(value)
        t.add_row(path, env, shown, info.description or "")
    console.print(t)
