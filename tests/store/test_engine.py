"""Opening the database: SQLite paths beside the config, WAL and busy_timeout on every connection, and no
password from the URL in any log line or error."""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from refinebot.config import LoadedConfig, RefinebotConfig
from refinebot.store import Store, StoreError
from refinebot.store.engine import (
    SQLITE_BUSY_TIMEOUT_MS,
    create_store_engine,
    database_url_for,
    safe_url,
)
from refinebot.store.migrate import head_revision
from tests.store.conftest import Postgres

SECRET = "s3cr3t-Pa55word"


def loaded(path: Path, database_url: str | None = None) -> LoadedConfig:
    values = {} if database_url is None else {"database_url": database_url}
    return LoadedConfig(path=path, config=RefinebotConfig(**values), rule_options={})


def test_default_sqlite_file_lives_beside_the_config(tmp_path: Path) -> None:
    config = tmp_path / "deploy" / "refinebot.toml"
    url = database_url_for(loaded(config))
    assert url.database == str(tmp_path / "deploy" / "refinebot.db")


def test_relative_sqlite_path_is_taken_from_the_config_folder_and_created(tmp_path: Path) -> None:
    config = tmp_path / "deploy" / "refinebot.toml"
    with Store.from_config(loaded(config, "sqlite:///state/nested/bot.db")):
        pass
    assert (tmp_path / "deploy" / "state" / "nested" / "bot.db").is_file()


def test_absolute_sqlite_path_and_other_urls_are_kept(tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere.db"
    assert database_url_for(loaded(tmp_path / "c.toml", f"sqlite:///{absolute}")).database == str(absolute)
    memory = database_url_for(loaded(tmp_path / "c.toml", "sqlite://"))
    assert memory.database is None
    postgres = "postgresql+psycopg://bot@db.internal:5432/refinebot"
    assert database_url_for(loaded(tmp_path / "c.toml", postgres)) == make_url(postgres)


def test_every_sqlite_connection_is_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        # Two connections open at once, so the second is a new one that must get the pragmas too.
        first, second = engine.raw_connection(), engine.raw_connection()
        for connection in (first, second):
            cursor = connection.cursor()
            assert cursor.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert cursor.execute("PRAGMA busy_timeout").fetchone() == (SQLITE_BUSY_TIMEOUT_MS,)
            assert cursor.execute("PRAGMA foreign_keys").fetchone() == (1,)
            cursor.close()
        first.close()
        second.close()
    finally:
        engine.dispose()


def test_reads_do_not_wait_for_a_writer_in_another_process(database_url: URL) -> None:
    with Store.open(database_url) as store:
        store.sync_state.save("jira:SHOP", {"v": "committed"})
        other = create_store_engine(database_url)  # its own pool: as another process would be
        try:
            with other.begin() as writer:  # holds the write lock (SQLite: BEGIN IMMEDIATE) until the end
                writer.execute(text("UPDATE sync_state SET raw_bytes = 0"))
                started = time.perf_counter()
                assert store.sync_state.load("jira:SHOP") == {"v": "committed"}
                assert store.findings.open("SHOP") == []
                assert time.perf_counter() - started < 2  # not the 10 s busy_timeout
        finally:
            other.dispose()


def test_unsupported_and_unparseable_urls_are_refused_without_echoing_them() -> None:
    with pytest.raises(StoreError, match="unsupported database 'mysql'") as unsupported:
        create_store_engine(f"mysql://bot:{SECRET}@db/refinebot")
    assert SECRET not in str(unsupported.value)
    with pytest.raises(StoreError, match="not a valid SQLAlchemy URL") as unparseable:
        create_store_engine(f"not a url {SECRET}")
    assert SECRET not in str(unparseable.value)


def test_safe_url_hides_the_password() -> None:
    shown = safe_url(f"postgresql+psycopg://bot:{SECRET}@db.internal:5432/refinebot")
    assert shown == "postgresql+psycopg://bot:***@db.internal:5432/refinebot"
    assert SECRET not in safe_url(f"::{SECRET}")


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc.args)


def test_a_database_that_cannot_be_reached_fails_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Port 9 on localhost: nothing listens, so the driver fails at once with its own message.
    url = f"postgresql+psycopg://bot:{SECRET}@127.0.0.1:9/refinebot?connect_timeout=3"
    with caplog.at_level(logging.DEBUG), pytest.raises(StoreError) as failed:
        Store.open(url)
    assert "postgresql+psycopg://bot:***@127.0.0.1:9/refinebot" in str(failed.value)
    assert SECRET not in _all_text(failed.value)
    assert SECRET not in caplog.text


def test_a_store_opened_with_a_password_logs_none_of_it(
    postgres: Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    # The test server trusts local connections, so the password is accepted and ignored.
    url: URL = postgres.new_schema().set(password=SECRET)
    with caplog.at_level(logging.DEBUG), Store.open(url) as store:
        store.sync_state.save("k", {"v": 1})
        assert store.url.count("***") == 1
        assert SECRET not in store.url
    assert (
        f"upgraded from empty to {head_revision()}" in caplog.text
    )  # the migration was logged, with the URL
    assert SECRET not in caplog.text


def test_a_failing_statement_names_the_database_without_the_password(postgres: Postgres) -> None:
    url = postgres.new_schema().set(password=SECRET)
    with (
        Store.open(url) as store,
        store.engine.connect() as connection,
        pytest.raises(Exception) as failed,  # noqa: PT011 (whatever the driver raises)
    ):
        connection.execute(text("SELECT * FROM no_such_table"))
    assert SECRET not in _all_text(failed.value)
