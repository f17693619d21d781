"""Fixtures shared by the whole suite: where the shared data lives, and a fake Jira server per test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.jira_server import FakeJiraServer
from tests.shared_data import SHARED, require_shared


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (real data and vendor specs)."""
    return require_shared(SHARED)


@pytest.fixture(scope="module")
def jira() -> Iterator[FakeJiraServer]:
    """A fake Jira (Cloud and Data Center sites) over real HTTP, one per test module (each test makes its sites)."""
    fake = FakeJiraServer().start()
    yield fake
    fake.stop()
