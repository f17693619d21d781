"""What the digest end-to-end tests share: the fake Jira server and the database each run uses.

``database_url`` runs a test once on the default SQLite file beside the config and once on a throwaway
PostgreSQL database (``REFINEBOT_TEST_POSTGRES_URL``; skipped without it, failed under ``CI=true``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.jira_server import FakeJiraServer
from tests.store.conftest import Postgres, postgres_admin_url


@pytest.fixture(scope="module")
def server() -> Iterator[FakeJiraServer]:
    """The fake Jira (Cloud and Data Center sites) over real HTTP."""
    fake = FakeJiraServer().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The run's throwaway PostgreSQL databases, dropped at the end."""
    databases = Postgres(postgres_admin_url())
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The config's ``database_url``: None for the default SQLite file, else an empty PostgreSQL database."""
    if request.param == "sqlite":
        return None
    databases: Postgres = request.getfixturevalue("postgres")
    return databases.new_database().render_as_string(hide_password=False)
