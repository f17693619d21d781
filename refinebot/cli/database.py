"""``refinebot db upgrade``: create or migrate the configured database."""

from __future__ import annotations

import typer
from rich.text import Text

from refinebot.cli.console import ConfigOption, error, load, out, registry
from refinebot.config import DEFAULT_CONFIG_PATH

db_app = typer.Typer(help="Work with the database (database_url in the config).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = DEFAULT_CONFIG_PATH) -> None:
    """Create or migrate the database to this version's schema (the store also does it when it opens)."""
    # Imported here: SQLAlchemy and Alembic would slow every other command's start-up.
    from refinebot.store.engine import StoreError, database_url_for
    from refinebot.store.migrate import migrate_url

    loaded = load(config, registry(), check_env=False)  # the database needs no source token
    try:
        done = migrate_url(database_url_for(loaded))
    except StoreError as exc:
        error(str(exc))
        raise typer.Exit(1) from None
    was = "already current" if not done.changed else f"was {done.before or 'empty'}"
    out.print(Text(f"ok: {done.url} at revision {done.after} ({was})"))
