"""What every command shares: the two consoles, error lines, the ``--config`` option and loading the config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from refinebot.config import ConfigError, LoadedConfig, load_config
from rules.registry import RegistryError, RuleRegistry, default_registry

out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="REFINEBOT_CONFIG",
        help="Path to the TOML configuration.",
        show_default=True,
        metavar="PATH",
    ),
]


ProjectOption = Annotated[
    list[str] | None,
    typer.Option("--project", "-p", metavar="KEY", help="Only this project (repeatable)."),
]


# Objects a command leaves to the process's exit (``keep_until_exit``), and whether the process
# ends without freeing them (``refinebot.cli.run`` says so; a test or other caller of ``main`` does not).
_KEPT: list[object] = []
_EXIT_FREES_NOTHING = [False]


def exit_frees_nothing() -> None:
    """Say that this process ends with ``os._exit`` once the command is done (``refinebot.cli.run``)."""
    _EXIT_FREES_NOTHING[0] = True


def keep_until_exit(value: object) -> None:
    """Keep ``value`` alive until the process ends, when the process ends without freeing objects:
    a 200k scan's results took 0.4 s to free one object at a time on the way out. Elsewhere (a
    process that goes on) nothing is kept."""
    if _EXIT_FREES_NOTHING[0]:
        _KEPT.append(value)


def require_projects(loaded: LoadedConfig, projects: list[str] | None) -> None:
    """Exit 1 naming the configured projects when ``--project`` names one the config lacks."""
    unknown = [p for p in projects or [] if p not in loaded.config.projects]
    if unknown:
        known = ", ".join(loaded.config.projects) or "none"
        error(f"unknown project(s) {', '.join(unknown)} (configured: {known})")
        raise typer.Exit(1)


def error(message: str) -> None:
    """Print an error line; the message is data (paths, keys, vendor text), never Rich markup."""
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)


def plural(count: int, word: str) -> str:
    """``1 source``, ``2 sources``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def registry() -> RuleRegistry:
    """The rule registry, or exit 2 when a plugin cannot be registered."""
    try:
        return default_registry()
    except RegistryError as exc:
        error(str(exc))
        raise typer.Exit(2) from None


def load(path: Path, rules: RuleRegistry, *, check_env: bool = True) -> LoadedConfig:
    """The validated config, or every problem printed and exit 1.

    ``check_env=False`` leaves unset token variables and missing source files to the projects that use
    them: a scan fails those projects only (exit 2), and ``--project OTHER`` is not blocked by them.
    """
    try:
        return load_config(path, rules, check_env=check_env)
    except ConfigError as exc:
        for problem in exc.problems:
            error(str(problem))
        if not path.exists():
            err.print(
                Text(
                    "Create one with 'refinebot config init' (a commented starter), "
                    "or pass --config PATH (or set REFINEBOT_CONFIG)."
                )
            )
        raise typer.Exit(1) from None
