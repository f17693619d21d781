"""Turn a ``database_url`` into a configured SQLAlchemy engine: path resolution, pragmas, locks, upserts.

SQLite (the default, one host) and PostgreSQL (several replicas) share one schema; everything that differs
between the two lives here: WAL and ``busy_timeout`` on every SQLite connection, ``BEGIN IMMEDIATE`` so
SQLite writers queue instead of failing, the locks that keep processes from racing (advisory locks on
PostgreSQL, ``flock`` on a file beside the database on SQLite), and the dialect's own upsert. URLs are only
ever rendered with the password hidden.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from refinebot.config import LoadedConfig

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///refinebot.db"
# A writer waits this long for another one (a cycle in another process) before SQLite says "locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_ONLY = "refinebot_read_only"  # an execution option: this connection's transactions only read
_LOCK_POLL_SECONDS = 0.05
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


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


def lock(connection: Connection, name: str, *, wait_seconds: float | None = None) -> None:
    """Hold a database-wide lock called ``name`` until the current transaction ends.

    PostgreSQL: a transaction-level advisory lock (released by commit, rollback or a dead connection, so
    no unlock path can be forgotten), waited for at most ``wait_seconds`` when given (else ``StoreError``).
    SQLite: the transaction already holds the write lock (BEGIN IMMEDIATE).
    """
    if connection.dialect.name != "postgresql":
        return
    if wait_seconds is None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)})
        return
    # lock_timeout bounds the wait (advisory locks are heavyweight locks); reset at once, so the rest of
    # the transaction (a migration's DDL) keeps the server's own setting.
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait_seconds * 1000)}")
    try:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)})
    except OperationalError:
        raise StoreError(
            f"another process has held the lock {name!r} on {safe_url(connection.engine.url)} "
            f"for more than {wait_seconds:g} s"
        ) from None
    connection.exec_driver_sql("SET LOCAL lock_timeout TO DEFAULT")


def lock_file_for(url: URL, name: str | None = None) -> Path | None:
    """The lock file beside a SQLite file database: ``<db>.lock``, or ``<db>.<name>.lock`` for a named lock
    (a name that is not a plain key is made one, with a hash so two names never share a file); None for
    any other database (PostgreSQL locks in the database itself; an in-memory SQLite has one process)."""
    if not is_sqlite_file(url):
        return None
    assert url.database is not None
    if name is None:
        return Path(f"{url.database}.lock")
    if not _PLAIN_NAME.match(name):
        digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
        name = f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)[:48]}-{digest}"
    return Path(f"{url.database}.{name}.lock")


class FileLock:
    """An exclusive ``flock`` on a file: between processes on one host, released by ``release`` or by the
    holder's death (the kernel drops it with the descriptor, so a killed process never leaves it held).

    Each ``FileLock`` opens its own descriptor, so two in one process exclude each other as well.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another holder has it."""
        assert self._fd is None, "FileLock is not re-entrant"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def acquire(self, wait_seconds: float) -> None:
        """Take the lock, waiting at most ``wait_seconds`` for its holder (else ``StoreError``)."""
        deadline = time.monotonic() + wait_seconds
        while not self.try_acquire():
            if time.monotonic() > deadline:
                raise StoreError(f"another process has held {self.path} for more than {wait_seconds:g} s")
            time.sleep(_LOCK_POLL_SECONDS)

    def release(self) -> None:
        """Let the lock go (closing the descriptor drops the flock)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


@contextmanager
def file_lock(url: URL, wait_seconds: float) -> Iterator[None]:
    """Hold ``<db>.lock`` beside a SQLite file for the block (nothing for other databases)."""
    path = lock_file_for(url)
    if path is None:
        yield
        return
    held = FileLock(path)
    held.acquire(wait_seconds)
    try:
        yield
    finally:
        held.release()


class Database:
    """An engine plus the transaction in progress, so nested store calls share one transaction.

    Each store method runs in ``begin()``: on its own it commits when it returns; inside a caller's
    ``transaction()`` it joins that one, and everything commits (or nothing does) at its end.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._current: ContextVar[Connection | None] = ContextVar(f"store_tx_{id(self)}", default=None)

    def after_fork(self) -> None:
        """In a forked child: open its own connections from now on, never the parent's.

        ``dispose(close=False)`` (SQLAlchemy's way for a forked process) drops the inherited pool without
        closing its connections, which the parent still uses; a transaction the parent had open is the
        parent's, so this process starts outside it.
        """
        self.engine.dispose(close=False)
        self._current.set(None)

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
