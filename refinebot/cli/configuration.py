"""``refinebot config check`` and ``refinebot config init``: validate a config, or write a commented starter."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from refinebot.cli.console import ConfigOption, error, load, out, plural, registry
from refinebot.config import DEFAULT_CONFIG_PATH

config_app = typer.Typer(help="Work with the configuration file.", no_args_is_help=True)

# The example's file source points at the demo backlog relative to the repository; a starter written
# anywhere else points at the copy inside the installed package, so it scans out of the box.
_EXAMPLE_EXPORT_PATH = 'path = "refinebot/demo/backlog.json"'


def starter_text() -> str:
    """The commented starter config: the shipped example, its demo source pointing at the installed demo."""
    example = (resources.files("refinebot.starter") / "config.example.toml").read_text(encoding="utf-8")
    backlog = Path(str(resources.files("refinebot.demo") / "backlog.json"))
    return example.replace(_EXAMPLE_EXPORT_PATH, f"path = {str(backlog)!r}".replace("'", '"'))


@config_app.command("check")
def config_check(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Validate the configuration and print every problem at once."""
    loaded = load(config, registry())
    projects = ", ".join(loaded.config.projects) or "none"
    out.print(
        f"[green]ok[/]: {config} ({plural(len(loaded.config.sources), 'source')}, projects: {projects})",
        highlight=False,
    )


@config_app.command("init")
def config_init(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Where to write it.")] = DEFAULT_CONFIG_PATH,
    force: Annotated[bool, typer.Option("--force", metavar="", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented starter config (its demo project scans at once; add your Jira or Azure DevOps)."""
    if path.exists() and not force:
        error(f"{path} exists; pass --force to overwrite it")
        raise typer.Exit(1)
    try:
        path.write_text(starter_text(), encoding="utf-8")
    except OSError as exc:
        error(f"{path}: cannot write: {exc.strerror}")
        raise typer.Exit(1) from None
    out.print(f"wrote {path}", highlight=False, markup=False)
    out.print(
        "Next: 'refinebot scan -p SHOP' scans the bundled demo backlog with it; then fill in a "
        "[sources.NAME] for your Jira or Azure DevOps, set its token variable, add a [projects.KEY], and "
        "run 'refinebot config check'.",
        highlight=False,
        markup=False,
    )
