"""Fixtures for the Jira connector tests: one fake Jira per test session, a fresh site per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest

from connectors.base import MemorySyncStateStore, Progress, SyncStateStore
from connectors.jira import JiraConnector
from tests.connectors.jira.harness import adf_validator_for, source_for
from tests.fakes.jira_server import FakeJiraServer, Site
from tests.shared_data import SHARED, require_shared


@pytest.fixture(scope="session")
def fake_jira() -> Iterator[FakeJiraServer]:
    server = FakeJiraServer().start()
    yield server
    server.stop()


@pytest.fixture
def cloud_site(fake_jira: FakeJiraServer) -> Site:
    return fake_jira.new_site(cloud=True)


@pytest.fixture
def dc_site(fake_jira: FakeJiraServer) -> Site:
    return fake_jira.new_site(cloud=False)


@pytest.fixture(scope="session")
def adf_validator() -> jsonschema.protocols.Validator:
    """The ADF JSON schema (``../shared/specs/adf-schema-v1-full.json``) as a validator."""
    return adf_validator_for(require_shared(SHARED / "specs" / "adf-schema-v1-full.json"))


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., JiraConnector]:
    """Build a real connector for a site; the token goes into the environment variable it names."""

    def build(
        site: Site,
        *,
        token: str | None = None,
        state: SyncStateStore | None = None,
        sleep: Callable[[float], None] | None = None,
        progress: Callable[[Progress], None] | None = None,
        **overrides: Any,
    ) -> JiraConnector:
        source = source_for(site, **overrides)
        monkeypatch.setenv(source.token_env, token or (site.token if site.cloud else site.pat))
        extra: dict[str, Any] = {}
        if sleep is not None:
            extra["sleep"] = sleep
        if progress is not None:
            extra["progress"] = progress
        return JiraConnector(source, name="test", state=state or MemorySyncStateStore(), **extra)

    return build
