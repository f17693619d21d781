"""The databases the store suite runs on: a SQLite file per test and a real PostgreSQL.

PostgreSQL comes from ``REFINEBOT_TEST_POSTGRES_URL`` (an admin URL, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``). Each run creates one throwaway database
``refinebot_test_<random>`` and drops it at the end; each test gets an empty schema of its own in it
(creating a schema takes milliseconds, dropping a database about a second). Tests that need a whole
empty database (migrations, racing processes) ask ``postgres.new_database()``. Without the variable the
PostgreSQL cases skip, except under ``CI=true``, where they fail: CI must test both engines.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from refinebot.store import Store

POSTGRES_ENV = "REFINEBOT_TEST_POSTGRES_URL"
ENGINES = ("sqlite", "postgresql")


class Postgres:
    """Throwaway databases and schemas on the test server, all dropped at the end of the run."""

    def __init__(self, admin_url: URL) -> None:
        self.admin_url = admin_url
        self.run_id = secrets.token_hex(4)
        self._admin: Engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self._counter = itertools.count(1)
        self._databases: list[str] = []
        self.main = self.new_database()

    def new_database(self) -> URL:
        """An empty database of its own."""
        name = f"refinebot_test_{self.run_id}_{next(self._counter)}"
        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self._databases.append(name)
        return self.admin_url.set(database=name)

    def new_schema(self) -> URL:
        """An empty schema in the run's database, as the URL's default (search_path)."""
        name = f"t{next(self._counter)}"
        engine = create_engine(self.main, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(f'CREATE SCHEMA "{name}"'))
        finally:
            engine.dispose()
        return self.main.update_query_dict({"options": f"-csearch_path={name}"})

    def drop_all(self) -> None:
        """Drop every database this run created."""
        with self._admin.connect() as connection:
            for name in self._databases:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


def postgres_admin_url() -> URL:
    """The admin URL from the environment; skip (or, under CI=true, fail) when it is unset."""
    raw = os.environ.get(POSTGRES_ENV)
    if not raw:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set under CI=true: the PostgreSQL store tests must run")
        pytest.skip(f"{POSTGRES_ENV} is not set (PostgreSQL store tests skipped)")
    return make_url(raw)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The run's PostgreSQL databases."""
    server = Postgres(postgres_admin_url())
    try:
        yield server
    finally:
        server.drop_all()


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """Each store test runs once per engine."""
    name: str = request.param
    return name


def _empty(engine_name: str, path: Path, request: pytest.FixtureRequest, *, whole: bool) -> URL:
    if engine_name == "sqlite":
        return make_url(f"sqlite:///{path}")
    server: Postgres = request.getfixturevalue("postgres")
    return server.new_database() if whole else server.new_schema()


@pytest.fixture
def database_url(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> URL:
    """An empty database on the test's engine: a fresh SQLite file or a fresh PostgreSQL schema."""
    return _empty(engine_name, tmp_path / "store.db", request, whole=False)


@pytest.fixture
def empty_database_url(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> URL:
    """A whole empty database on the test's engine (for migration tests); SQLite's folder not made yet."""
    return _empty(engine_name, tmp_path / "empty" / "store.db", request, whole=True)


@pytest.fixture
def store(database_url: URL) -> Iterator[Store]:
    """An opened (migrated) store on an empty database."""
    opened = Store.open(database_url)
    try:
        yield opened
    finally:
        opened.close()
