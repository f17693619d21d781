"""``refinebot db upgrade`` through the real CLI: creates the database beside the config, is idempotent,
and a database that cannot be reached fails with exit 1 and without the password."""

from __future__ import annotations

import textwrap
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import URL

from refinebot.store.engine import create_store_engine
from refinebot.store.migrate import head_revision
from tests.cli_process import run_cli
from tests.store.conftest import Postgres

SECRET = "s3cr3t-Pa55word"
HEAD = head_revision()


def write_config(folder: Path, database_url: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    line = "" if database_url is None else f'database_url = "{database_url}"\n'
    config = folder / "refinebot.toml"
    config.write_text(
        line
        + textwrap.dedent(
            """
            [sources.export]
            kind = "file"
            path = "backlog.json"

            [projects.SHOP]
            source = "export"
            """
        ),
        encoding="utf-8",
    )
    return config


def test_upgrade_creates_the_default_sqlite_file_beside_the_config(tmp_path: Path) -> None:
    config = write_config(tmp_path / "deploy", None)
    first = run_cli(["db", "upgrade", "--config", str(config)], cwd=tmp_path)
    assert first.code == 0, first.stderr
    database = tmp_path / "deploy" / "refinebot.db"
    assert f"ok: sqlite:///{database} at revision {HEAD} (was empty)" in first.stdout
    engine = create_store_engine(f"sqlite:///{database}")
    try:
        assert "findings" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
    again = run_cli(["db", "upgrade", "--config", str(config)], cwd=tmp_path)
    assert again.code == 0, again.stderr
    assert f"at revision {HEAD} (already current)" in again.stdout


def test_upgrade_of_a_postgresql_database_named_in_the_environment(
    tmp_path: Path, postgres: Postgres
) -> None:
    url: URL = postgres.new_schema().set(password=SECRET)
    config = write_config(tmp_path, None)
    result = run_cli(
        ["db", "upgrade", "--config", str(config)],
        env={
            "REFINEBOT_DATABASE_URL": url.render_as_string(hide_password=False),
            "REFINEBOT_LOG_LEVEL": "DEBUG",
        },
    )
    assert result.code == 0, result.stderr
    assert f"at revision {HEAD} (was empty)" in result.stdout
    assert f"upgraded from empty to {HEAD}" in result.stderr  # the DEBUG log ran
    assert SECRET not in result.stdout + result.stderr


def test_an_unreachable_database_fails_without_the_password(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"postgresql+psycopg://bot:{SECRET}@127.0.0.1:9/refinebot")
    result = run_cli(["db", "upgrade", "--config", str(config)], env={"REFINEBOT_LOG_LEVEL": "DEBUG"})
    assert result.code == 1
    assert (
        "cannot migrate the database at postgresql+psycopg://bot:***@127.0.0.1:9/refinebot" in result.stderr
    )
    assert SECRET not in result.stdout + result.stderr
