"""The packaged Alembic migrations: an empty database upgrades to head on both engines, the tables match
``schema.py`` exactly (no pending autogenerate diff), and processes racing on one empty database all
succeed with the schema created once."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL

import refinebot.store
from refinebot.store import Store
from refinebot.store.engine import create_store_engine
from refinebot.store.migrate import alembic_config, current_revision, head_revision, upgrade
from refinebot.store.schema import metadata
from tests.store.conftest import Postgres

TABLES = {
    "alembic_version",
    "bot_comments",
    "chart_uploads",
    "cycle_claims",
    "digests",
    "findings",
    "readiness",
    "rule_cache",
    "slack_deliveries",
    "suppressions",
    "sync_items",
    "sync_state",
}


def test_migrations_ship_inside_the_package() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    package_dir = Path(refinebot.store.__file__).parent
    assert Path(scripts.dir).resolve() == (package_dir / "migrations").resolve()
    assert [r.revision for r in scripts.walk_revisions()] == ["0003", "0002", "0001"]
    assert head_revision() == "0003"


def test_upgrade_of_an_empty_database_matches_the_models(empty_database_url: URL) -> None:
    engine = create_store_engine(empty_database_url)
    try:
        assert current_revision(engine) is None
        assert upgrade(engine) == head_revision()
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) == TABLES
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), metadata)
            assert diff == [], f"schema.py and the migrations differ: {diff}"
            command.check(alembic_config(connection))  # what `alembic check` runs; raises on a diff
        assert upgrade(engine) == head_revision()  # a second upgrade finds nothing to do
    finally:
        engine.dispose()


def test_opening_a_store_migrates_it(database_url: URL) -> None:
    with Store.open(database_url) as store:
        assert current_revision(store.engine) == head_revision()


def test_opening_without_migrating_leaves_an_empty_database_empty(database_url: URL) -> None:
    with Store.open(database_url, migrate=False) as store:
        assert current_revision(store.engine) is None
        assert inspect(store.engine).get_table_names() == []


def _upgrade_when_all_are_ready(url: str, barrier: Barrier) -> None:
    engine = create_store_engine(url)
    try:
        with engine.connect():
            pass  # connect before the barrier, so all start migrating at the same moment
        barrier.wait(timeout=60)
        upgrade(engine)
    finally:
        engine.dispose()


def _race(url: URL, processes: int) -> list[int | None]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    started = [
        context.Process(
            target=_upgrade_when_all_are_ready, args=(url.render_as_string(hide_password=False), barrier)
        )
        for _ in range(processes)
    ]
    for process in started:
        process.start()
    for process in started:
        process.join(timeout=120)
    return [process.exitcode for process in started]


def _assert_migrated_once(url: URL) -> None:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [head_revision()]
        assert set(inspect(engine).get_table_names()) == TABLES
    finally:
        engine.dispose()


@pytest.mark.parametrize("round_number", [1, 2, 3])
def test_processes_racing_on_an_empty_postgresql_all_succeed(postgres: Postgres, round_number: int) -> None:
    url = postgres.new_database()
    assert _race(url, processes=3) == [0, 0, 0], f"round {round_number}: a migrating process failed"
    _assert_migrated_once(url)


def test_processes_racing_on_an_empty_sqlite_file_all_succeed(tmp_path: Path) -> None:
    url = URL.create("sqlite", database=str(tmp_path / "race" / "store.db"))
    assert _race(url, processes=3) == [0, 0, 0]
    _assert_migrated_once(url)
