"""Alembic's environment for the store: run the migrations on the connection ``migrate.py`` hands over.

``refinebot.store.migrate`` opens the connection, takes the migration lock and passes the connection in
``config.attributes["connection"]``; the plain ``alembic`` command (a developer running ``alembic
revision --autogenerate -x url=...``) gets an engine from the URL instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from refinebot.store.engine import create_store_engine
from refinebot.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("pass the database: alembic -x url=sqlite:///refinebot.db ...")
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


_main()
