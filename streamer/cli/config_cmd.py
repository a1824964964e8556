"""``streamer config``: every setting, its environment variable, default and current value."""

from __future__ import annotations

import click
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.table import Table

from streamer.cli.common import console, settings_with
from streamer.settings import Settings


def env_name(name: str, info: FieldInfo) -> str:
    alias = info.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return " / ".join(str(c) for c in choices)
    return f"STREAMER_{name.upper()}"


def default_text(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "(computed)"
    if info.default is PydanticUndefined or info.default is None:
        return ""
    return str(info.default)


def markdown_table() -> str:
    lines = ["| setting | environment variable | default | meaning |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        lines.append(f"| `{name}` | `{env_name(name, info)}` | `{default_text(info)}` | "
                     f"{info.description or ''} |")
    return "\n".join(lines)


@click.command()
@click.option("--markdown", is_flag=True, help="Print the settings table of docs/SETTINGS.md.")
def config(markdown: bool) -> None:
    """Show every setting with its environment variable and current value."""
    if markdown:
        click.echo(markdown_table())
        return
    current = settings_with()
    t = Table(title="Settings (environment variable -> current value)")
    for col in ("environment variable", "value", "meaning"):
        t.add_column(col)
    for name, info in Settings.model_fields.items():
        value = getattr(current, name)
        shown = "********" if isinstance(value, SecretStr) else str(value)
        t.add_row(env_name(name, info), shown, info.description or "")
    console.print(t)
