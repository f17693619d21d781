"""Fixtures for the Jira connector tests: one fake Jira per test session, a fresh site per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fake_jira import FakeJiraServer, Site

from connectors.jira import JiraConnector, JiraSyncState
from refinebot.config import JiraSourceConfig


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


def source_for(site: Site, **overrides: Any) -> JiraSourceConfig:
    """A source config pointing at ``site`` with test-sized backoff (0.01 s base)."""
    values: dict[str, Any] = {
        "kind": "jira",
        "url": site.url,
        "token_env": f"FAKE_JIRA_TOKEN{site.prefix.replace('/', '_').upper()}",
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.05,
    }
    if site.cloud:
        values["email"] = site.email
    values.update(overrides)
    return JiraSourceConfig.model_validate(values)


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., JiraConnector]:
    """Build a real connector for a site; the token goes into the environment variable it names."""

    def build(
        site: Site,
        *,
        token: str | None = None,
        state: JiraSyncState | None = None,
        sleep: Callable[[float], None] | None = None,
        **overrides: Any,
    ) -> JiraConnector:
        source = source_for(site, **overrides)
        monkeypatch.setenv(source.token_env, token or (site.token if site.cloud else site.pat))
        extra: dict[str, Any] = {}
        if sleep is not None:
            extra["sleep"] = sleep
        return JiraConnector(source, name="test", state=state or JiraSyncState(), progress=False, **extra)

    return build
