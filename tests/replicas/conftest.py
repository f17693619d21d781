"""What the replica tests share: the engine each runs on (SQLite file, throwaway PostgreSQL database), the
fake Jira Cloud and fake Slack, and one SHOP project wired to them (``Shop``).

PostgreSQL comes from ``REFINEBOT_TEST_POSTGRES_URL`` through the store suite's ``postgres`` fixture
(skipped without it, failed under ``CI=true``); each test gets a whole empty database, as a first deploy
would, so the processes also race on creating the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.jira_server import FakeJiraServer
from tests.fakes.slack_server import running
from tests.replicas.scenario import Shop
from tests.replicas.warm_cli import WarmCli
from tests.store.conftest import Postgres, postgres  # noqa: F401  (the run's throwaway databases)

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """Each replica test runs once per engine."""
    name: str = request.param
    return name


@pytest.fixture
def database_url(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database: a SQLite file not created yet, or a new PostgreSQL database."""
    if engine_name == "sqlite":
        return f"sqlite:///{tmp_path / 'refinebot.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.new_database().render_as_string(hide_password=False)


@pytest.fixture
def shop(
    jira: FakeJiraServer, database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Shop]:
    """The SHOP project on a new fake Jira site and a fake Slack, with its config on ``database_url``
    (a module that sets ``LIGHT_SHOP = True`` runs it without the duplicate rule)."""
    light = bool(getattr(request.module, "LIGHT_SHOP", False))
    with running() as (slack, base_url):
        yield Shop.create(jira, slack, base_url, tmp_path, database_url, light=light)


@pytest.fixture(scope="module")
def warm_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmCli]:
    """One warm parent for the module's CLI runs."""
    cli = WarmCli(tmp_path_factory.mktemp("warm-cli"))
    yield cli
    cli.close()
