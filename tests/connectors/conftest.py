"""Fixtures for the Azure DevOps connector tests: one fake organisation per session, spec-validated.

The SDK reads ``AZURE_DEVOPS_CACHE_DIR`` once, when it is first imported, and otherwise writes to
the user's home; this module points it at a temporary folder before anything imports the SDK.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_SDK_CACHE = tempfile.mkdtemp(prefix="refinebot-ado-sdk-cache-")
os.environ["AZURE_DEVOPS_CACHE_DIR"] = _SDK_CACHE
atexit.register(shutil.rmtree, _SDK_CACHE, True)

import jsonschema  # noqa: E402

from tests.fakes.ado_server import FakeAzureDevOps  # noqa: E402
from tests.shared_data import require_shared  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "specs" / "azure-devops-wit-7.1.json"
PAT = "pat-0123456789-secret"
TOKEN_ENV = "ADO_TEST_PAT"


def spec_path() -> Path:
    """The vendor spec; skipped when ../shared is absent, except under CI where it must exist."""
    return require_shared(SPEC)


def load_spec_definitions(path: Path) -> dict[str, Any]:
    """The spec's definitions, with the corrections real traffic needs (each one explained)."""
    spec = json.loads(path.read_text(encoding="utf-8-sig"))  # the file starts with a UTF-8 BOM
    definitions: dict[str, Any] = copy.deepcopy(spec["definitions"])
    # Spec drift 1: field values are declared as JSON objects, but real work items carry strings,
    # numbers and identity objects in ``fields`` (System.Title is a string); accept any JSON value.
    definitions["WorkItem"]["properties"]["fields"]["additionalProperties"] = {}
    # Spec drift 2: link attributes likewise hold booleans and strings (isLocked, name, comment).
    definitions["Link"]["properties"]["attributes"]["additionalProperties"] = {}
    return definitions


class SpecValidator:
    """Validates the fake's WIQL and batch traffic against the vendor's Swagger definitions."""

    def __init__(self, definitions: dict[str, Any]) -> None:
        self.definitions = definitions
        self.violations: list[str] = []
        self.checked = 0
        self._validators: dict[str, jsonschema.Draft4Validator] = {}

    def _validate(self, definition: str, document: Any) -> None:
        validator = self._validators.get(definition)
        if validator is None:
            schema = {"$ref": f"#/definitions/{definition}", "definitions": self.definitions}
            validator = self._validators[definition] = jsonschema.Draft4Validator(schema)
        validator.validate(document)

    def check(self, endpoint: str, direction: str, document: Any) -> None:
        """Raise ``jsonschema.ValidationError`` when a document breaks the spec; remember it."""
        try:
            self._check(endpoint, direction, document)
        except jsonschema.ValidationError as exc:
            self.violations.append(f"{endpoint} {direction}: {exc.message}")
            raise
        self.checked += 1

    def _check(self, endpoint: str, direction: str, document: Any) -> None:
        if endpoint == "wiql":
            self._validate("Wiql" if direction == "request" else "WorkItemQueryResult", document)
            return
        if endpoint == "workitemsbatch" and direction == "request":
            # Spec drift 3: the enums are lower case; the SDK sends "Relations" / "Omit" and the
            # service compares case-insensitively.
            normalised = dict(document)
            for key in ("$expand", "errorPolicy"):
                if isinstance(normalised.get(key), str):
                    normalised[key] = normalised[key].lower()
            self._validate("WorkItemBatchGetRequest", normalised)
            return
        if endpoint == "workitemsbatch":
            # Spec drift 4: the spec declares a bare array of WorkItem; real traffic (and the SDK's
            # _unwrap_collection) use the {count, value} wrapper. Check it, then each item.
            assert set(document) == {"count", "value"}, f"not a list wrapper: {sorted(document)}"
            assert document["count"] == len(document["value"])
            for item in document["value"]:
                if item is not None:  # errorPolicy=omit leaves null slots
                    self._validate("WorkItem", item)


@pytest.fixture(scope="session")
def optional_spec_validator() -> SpecValidator | None:
    """The spec validator, or None without ../shared outside CI (connector tests still run)."""
    if SPEC.is_file() or os.environ.get("CI") == "true":
        return SpecValidator(load_spec_definitions(spec_path()))
    return None


@pytest.fixture(scope="session")
def spec_validator(optional_spec_validator: SpecValidator | None) -> SpecValidator:
    """The validator built from ../shared/specs/azure-devops-wit-7.1.json (skips without it)."""
    if optional_spec_validator is None:
        spec_path()  # skips, naming the missing file
        raise AssertionError("spec_path() should have skipped")
    return optional_spec_validator


@pytest.fixture(scope="session")
def ado(optional_spec_validator: SpecValidator | None) -> Iterator[FakeAzureDevOps]:
    """The session's fake organisation; every WIQL and batch exchange is spec-checked."""
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


class Sleeps:
    """Records the delays the connector asks for instead of sleeping (the tests stay fast)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


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
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
