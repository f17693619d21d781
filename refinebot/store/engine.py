"""Turn a ``database_url`` into a configured SQLAlchemy engine: path resolution, pragmas, locks, upserts.

SQLite (the default, one host) and PostgreSQL (several replicas) share one schema; everything that differs
between the two lives here: WAL and ``busy_timeout`` on every SQLite connection, ``BEGIN IMMEDIATE`` so
SQLite writers queue instead of failing, advisory locks on PostgreSQL, and the dialect's own upsert.
URLs are only ever rendered with the password hidden.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from refinebot.config import LoadedConfig

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///refinebot.db"
# A writer waits this long for another one (a cycle in another process) before SQLite says "locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_ONLY = "refinebot_read_only"  # an execution option: this connection's transactions only read


class StoreError(Exception):
    """The store cannot be opened or used; the message never carries a password."""


def safe_url(url: URL | str) -> str:
    """The URL as it may appear in logs and errors: password replaced by ``***``."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparseable database URL>"  # echoing it could echo a password
    return parsed.render_as_string(hide_password=True)


def describe_error(exc: SQLAlchemyError, url: URL) -> str:
    """The driver's own words for ``exc`` (not the SQL or its parameters), any password in them blanked."""
    orig = getattr(exc, "orig", None)
    message = " ".join(str(orig if orig is not None else exc).split())
    if url.password:
        message = message.replace(str(url.password), "***")
    return message


def parse_url(url: URL | str) -> URL:
    """``url`` parsed; an unparseable one raises ``StoreError`` without repeating it."""
    if isinstance(url, URL):
        return url
    try:
        return make_url(url)
    except ArgumentError:
        raise StoreError("database_url is not a valid SQLAlchemy URL (e.g. sqlite:///refinebot.db)") from None


def is_sqlite_file(url: URL) -> bool:
    """True for a SQLite URL naming a file (not ``sqlite://`` in memory)."""
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def database_url_for(loaded: LoadedConfig) -> URL:
    """The config's ``database_url`` with a relative SQLite path taken relative to the config file."""
    url = parse_url(loaded.config.database_url)
    if is_sqlite_file(url):
        assert url.database is not None
        url = url.set(database=str(loaded.resolve_path(Path(url.database))))
    return url


def create_store_engine(url: URL | str) -> Engine:
    """An engine for ``url``, configured for the store (the SQLite file's folder is created if needed)."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if is_sqlite_file(parsed):
            assert parsed.database is not None
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
    elif backend == "postgresql":
        try:
            # pool_pre_ping: a long-running serve outlives database restarts and idle-connection reapers.
            engine = create_engine(parsed, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise StoreError(
                f"{safe_url(parsed)} needs the {exc.name} driver: pip install 'refinebot[postgres]'"
            ) from None
    else:
        raise StoreError(f"unsupported database {backend!r} in {safe_url(parsed)} (use sqlite or postgresql)")
    logger.debug("store engine for %s", safe_url(parsed))
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself instead of pysqlite's lazy deferred BEGIN
        # (the recipe in SQLAlchemy's SQLite dialect docs).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL itself waits for a writer in another process.
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; safe with WAL
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes fails at once with "database is locked" when
        # another writer got there first (busy_timeout does not apply to that upgrade); taking the write
        # lock up front makes it wait its turn instead. It is also the migration's lock on SQLite.
        # Pure reads (Database.read) begin deferred: in WAL mode they never wait for a writer, so a Slack
        # listener answers while a cycle holds the write lock.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` derived from ``name``."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def lock(connection: Connection, name: str) -> None:
    """Hold a database-wide lock called ``name`` until the current transaction ends.

    PostgreSQL: a transaction-level advisory lock (released by commit, rollback or a dead connection, so
    no unlock path can be forgotten). SQLite: the transaction already holds the write lock (BEGIN IMMEDIATE).
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)})


class Database:
    """An engine plus the transaction in progress, so nested store calls share one transaction.

    Each store method runs in ``begin()``: on its own it commits when it returns; inside a caller's
    ``transaction()`` it joins that one, and everything commits (or nothing does) at its end.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._current: ContextVar[Connection | None] = ContextVar(f"store_tx_{id(self)}", default=None)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction: the caller's when one is open, else a new one committed at exit."""
        current = self._current.get()
        if current is not None:
            yield current
            return
        with self.engine.connect() as connection, connection.begin():
            token = self._current.set(connection)
            try:
                yield connection
            finally:
                self._current.reset(token)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """Like ``begin`` for calls that only read: the caller's transaction when one is open, else a
        read-only one that never waits for a writer (SQLite: a deferred BEGIN)."""
        current = self._current.get()
        if current is not None:
            yield current
            return
        with self.engine.connect() as connection:
            connection.execution_options(**{READ_ONLY: True})
            with connection.begin():
                yield connection

    def upsert(
        self,
        connection: Connection,
        table: Table,
        rows: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        keys: Sequence[str],
        update: Sequence[str] | None = None,
    ) -> None:
        """Insert ``rows``, or replace the ``update`` columns (default: all given but ``keys``) of those whose
        ``keys`` already exist; atomic on both engines (ON CONFLICT DO UPDATE)."""
        batch = list(rows) if isinstance(rows, Sequence) else [dict(rows)]
        replaced = update if update is not None else [name for name in batch[0] if name not in keys]
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        statement = insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={name: statement.excluded[name] for name in replaced}
        )
        connection.execute(statement, batch)
