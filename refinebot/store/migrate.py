"""Bring a database's schema to the newest revision with Alembic, one process at a time.

Replicas started together on an empty PostgreSQL would race to create the same tables; each takes a
transaction-level advisory lock first and runs the migrations inside that transaction (PostgreSQL DDL is
transactional), so the second one waits, then finds the schema at head and does nothing. On SQLite each
process first takes ``flock`` on ``<db>.lock`` beside the file, before its first connection (whose WAL
switch would otherwise race too), and the migration transaction starts with ``BEGIN IMMEDIATE``. Both
waits are bounded: a lock held longer than ``MIGRATION_LOCK_WAIT_SECONDS`` is a clear error, not a hang.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from refinebot.faults import fault_point
from refinebot.store.engine import (
    READ_ONLY,
    StoreError,
    create_store_engine,
    describe_error,
    file_lock,
    lock,
    safe_url,
)

logger = logging.getLogger(__name__)

MIGRATION_LOCK = "refinebot.store.migrate"
SCRIPT_LOCATION = "refinebot.store:migrations"
MIGRATION_LOCK_WAIT_SECONDS = 120.0  # a migration takes well under a second; longer is a stuck process


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's config for the packaged migrations (no alembic.ini needed), bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the package ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store ships at least one migration"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when it has no schema yet); a read that never waits for a
    writer (SQLite: a deferred BEGIN), so ``agenda`` and ``report`` can ask while a cycle runs."""
    with engine.connect() as connection:
        connection.execution_options(**{READ_ONLY: True})
        return MigrationContext.configure(connection).get_current_revision()


@dataclass(frozen=True, slots=True)
class Migration:
    """What one upgrade did: the revision before (None: an empty database) and after."""

    url: str  # password hidden
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        """True when a migration ran."""
        return self.before != self.after


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate the database to ``revision`` under the migration lock; return the revision it is now at."""
    return migrate(engine, revision).after


def migrate(engine: Engine, revision: str = "head") -> Migration:
    """Migrate the database to ``revision`` under the migration lock, saying what changed."""
    where = safe_url(engine.url)
    fault_point("migrate")  # tests: processes started together are let go from here at one moment
    try:
        with (
            file_lock(engine.url, MIGRATION_LOCK_WAIT_SECONDS),
            engine.connect() as connection,
            connection.begin(),
        ):
            lock(connection, MIGRATION_LOCK, wait_seconds=MIGRATION_LOCK_WAIT_SECONDS)
            before = MigrationContext.configure(connection).get_current_revision()
            command.upgrade(alembic_config(connection), revision)
            after = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot migrate the database at {where}: {describe_error(exc, engine.url)}"
        ) from None
    if before != after:
        logger.info("store schema at %s upgraded from %s to %s", where, before or "empty", after)
    return Migration(where, before, after)


def migrate_url(url: URL | str, revision: str = "head") -> Migration:
    """``migrate`` the database at ``url`` with an engine of its own (what ``refinebot db upgrade`` runs)."""
    engine = create_store_engine(url)
    try:
        return migrate(engine, revision)
    finally:
        engine.dispose()
