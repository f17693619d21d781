"""``refinebot serve``: run the Slack app (HTTP or Socket Mode, as ``[slack] mode`` says) and the projects' schedules until SIGTERM."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from refinebot import logs
from refinebot.cli.console import ConfigOption, error, load, registry
from refinebot.config import DEFAULT_CONFIG_PATH


def serve_command(
    config: ConfigOption = DEFAULT_CONFIG_PATH,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", min=0, max=65535, help="Listen on this port (http mode; default [slack] port)."
        ),
    ] = None,
) -> None:
    """Run the Slack app and each project's digest on its schedule, until SIGTERM (exit 0).

    HTTP mode serves POST /slack/events and GET /healthz; Socket Mode needs the app-level token.
    SIGHUP re-reads the config (a bad one is logged and the old one kept).
    """
    # Imported here: Slack, SQLAlchemy and Alembic would slow every other command's start-up.
    from refinebot.serve import ServeError, run_until_signalled, serve
    from refinebot.store import StoreError

    rules = registry()
    loaded = load(config, rules, check_env=False)
    # A service's log: JSON lines off a terminal (REFINEBOT_LOG_FORMAT overrides), the secrets masked.
    logs.configure(
        logging.getLogger().level, logs.format_from_env("auto"), secrets=logs.secret_values(loaded.config)
    )
    # Operators need to see it listening and stopping even at the default WARNING level.
    if logging.getLogger().level <= logging.WARNING:  # but -q still means errors only
        logging.getLogger("refinebot").setLevel(min(logging.getLogger().level, logging.INFO))
    try:
        with serve(loaded, port=port, registry=rules) as server:
            run_until_signalled(server)
    except (ServeError, StoreError) as exc:
        error(str(exc))
        raise typer.Exit(1) from None
