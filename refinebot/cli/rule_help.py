"""``refinebot rules``: list the rules, or explain one with its options."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, get_args, get_origin

import typer
from rich import box
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from refinebot.cli.console import error, out
from refinebot.cli.console import registry as console_registry


def rules_command(
    name: Annotated[str | None, typer.Argument(help="A rule name or code to explain.")] = None,
) -> None:
    """List the rules, or explain one with its options."""
    registry = console_registry()
    if name is None:
        table = Table(title="Rules", box=box.SIMPLE_HEAD)
        for column in ("Code", "Name", "Severity"):
            table.add_column(column, no_wrap=True)
        table.add_column("Summary", ratio=1)
        for rule in registry:
            table.add_row(rule.code, rule.name, rule.default_severity.value, rule.summary())
        out.print(table)
        out.print("Explain one: refinebot rules NAME", highlight=False, markup=False)
        return
    found = registry.get(name)
    if found is None:
        error(f"no rule named {name!r}; run 'refinebot rules' for the list")
        raise typer.Exit(1)
    rule = found
    out.print(
        Text.assemble(
            (f"{rule.code} {rule.name}", "bold"), f" ({rule.default_severity.value}, {rule.scope}-level)"
        )
    )
    out.print(plain(rule.summary()), highlight=False, markup=False)
    for paragraph in rule.explanation().split("\n\n"):
        if paragraph.strip():
            out.print()
            out.print(plain(" ".join(paragraph.split())), highlight=False, markup=False)
    out.print()
    out.print(Text("Options", style="bold"))
    # One option per entry, its help indented below: reads the same at 80 columns as at 200.
    for field_name, info in rule.Options.model_fields.items():
        default = info.get_default(call_default_factory=True)
        description = info.description or ""
        out.print(
            Text.assemble(
                "  ",
                (field_name, "bold"),
                f" = {_toml_type(info.annotation)}",
                (f"  (default: {_toml_value(default)})", "dim"),
            )
        )
        if description:
            out.print(Padding(Text(plain(description)), (0, 0, 0, 6)))
    out.print(
        f"Configure in [rules] or [projects.KEY.rules]: {rule.name} = {{ enabled = true }}",
        highlight=False,
        markup=False,
    )


def plain(text: str) -> str:
    """Docstring text for a terminal: reStructuredText ``literals`` shown as 'literals'."""
    return re.sub(r"``([^`]+)``", r"'\1'", text)


def _toml_type(annotation: object) -> str:
    """How an option's type reads to someone writing TOML."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    origin = get_origin(annotation)
    if origin is list and args:
        return "list of " + _toml_type(args[0])
    if args and origin is not list:
        return " | ".join(_toml_type(a) for a in args)
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return "|".join(member.value for member in annotation)
    return {bool: "true|false", int: "integer", float: "number", str: "text"}.get(
        annotation if isinstance(annotation, type) else object, str(annotation)
    )


def _toml_value(value: object) -> str:
    """A default value as it would be written in TOML."""
    if value is None:
        return "the rule's own"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return f'"{value.value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
