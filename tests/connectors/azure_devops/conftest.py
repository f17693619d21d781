"""Fixtures for the Azure DevOps connector tests: one spec-validated fake organisation per session, and
a factory for connectors wired to it (fast backoff, recorded sleeps, fixed jitter)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import pytest

from connectors.azure_devops import AzureDevOpsConnector
from connectors.base import SyncStateStore
from refinebot.config import AzureDevOpsSourceConfig
from tests.connectors.azure_devops.fake_org import PAT, TOKEN_ENV
from tests.connectors.azure_devops.spec_check import SPEC, SpecValidator, load_spec_definitions
from tests.fakes.ado_server import FakeAzureDevOps
from tests.shared_data import require_shared


class Sleeps:
    """Records the delays the connector asks for instead of sleeping (the tests stay fast)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class ConnectorFactory(Protocol):
    """Makes a connector for the session's fake; ``settings`` are ``AzureDevOpsSourceConfig`` keys."""

    def __call__(
        self, *, token_env: str = TOKEN_ENV, state: SyncStateStore | None = None, **settings: Any
    ) -> AzureDevOpsConnector: ...


@pytest.fixture(scope="session")
def optional_spec_validator() -> SpecValidator | None:
    """The spec validator, or None without ../shared outside CI (connector tests still run)."""
    if SPEC.is_file() or os.environ.get("CI") == "true":
        return SpecValidator(load_spec_definitions(require_shared(SPEC)))
    return None


@pytest.fixture(scope="session")
def spec_validator(optional_spec_validator: SpecValidator | None) -> SpecValidator:
    """The validator built from ../shared/specs/azure-devops-wit-7.1.json (skips without it)."""
    if optional_spec_validator is None:
        require_shared(SPEC)  # skips, naming the missing file
        raise AssertionError("require_shared() should have skipped")
    return optional_spec_validator


@pytest.fixture(scope="session")
def ado(optional_spec_validator: SpecValidator | None) -> Iterator[FakeAzureDevOps]:
    """The session's fake organisation; every WIQL, batch and comment exchange is spec-checked."""
    validator = optional_spec_validator
    fake = FakeAzureDevOps(org="fabrikam", pat=PAT, validator=validator.check if validator else None)
    fake.start()
    yield fake
    fake.stop()
    if validator is not None:
        assert not validator.violations, validator.violations


@pytest.fixture
def pat_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The PAT in the environment variable the source names (the environment, not our code)."""
    monkeypatch.setenv(TOKEN_ENV, PAT)
    return TOKEN_ENV


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_connector(ado: FakeAzureDevOps, sleeps: Sleeps) -> ConnectorFactory:
    """Connectors for the session's fake, with fast backoff, recorded sleeps and jitter() = 0.5."""

    def make(
        *, token_env: str = TOKEN_ENV, state: SyncStateStore | None = None, **settings: Any
    ) -> AzureDevOpsConnector:
        settings.setdefault("backoff_base_seconds", 0.01)
        settings.setdefault("backoff_max_seconds", 0.05)
        source = AzureDevOpsSourceConfig(kind="azure_devops", url=ado.url, token_env=token_env, **settings)
        return AzureDevOpsConnector(source, name="ado-test", state=state, sleep=sleeps, jitter=lambda: 0.5)

    return make


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """A project name unique to this test: tests sharing the fake never see each other."""

    def make(prefix: str = "P") -> str:
        node = request.node.name.replace("[", "-").replace("]", "")
        return f"{prefix}-{node}"[:64]

    return make


@pytest.fixture
def unused_tcp_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
