"""The fake Azure DevOps server keeps to the vendor's WIT 7.1 spec where the spec is right.

The session's fake validates every WIQL and batch exchange as it serves it (see conftest.py for the
four documented differences between the spec and real traffic); these tests prove the validator
bites
and that it really ran over the traffic of a sync.
"""

from __future__ import annotations

from collections.abc import Callable

import jsonschema
import pytest

from connectors.azure_devops import AzureDevOpsConnector
from refinebot.config import AzureDevOpsSourceConfig
from tests.connectors.conftest import TOKEN_ENV, SpecValidator
from tests.fakes.ado_server import FakeAzureDevOps


def test_a_sync_is_validated_against_the_spec(
    ado: FakeAzureDevOps,
    spec_validator: SpecValidator,
    pat_env: str,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Spec")
    ado.add_project(project)
    ado.add_item(project, "validated", relations=[("System.LinkTypes.Related", 1)])
    before = spec_validator.checked
    source = AzureDevOpsSourceConfig(kind="azure_devops", url=ado.url, token_env=TOKEN_ENV)

    AzureDevOpsConnector(source).fetch(project, None, full=True)

    # WIQL request + response, batch request + response, at least.
    assert spec_validator.checked - before >= 4
    assert spec_validator.violations == []


@pytest.mark.parametrize(
    ("endpoint", "direction", "document"),
    [
        ("wiql", "response", {"workItems": [{"id": "7", "url": "u"}]}),
        ("wiql", "response", {"queryType": "graph"}),
        ("wiql", "request", {"query": 42}),
        ("workitemsbatch", "request", {"ids": ["1"]}),
        ("workitemsbatch", "request", {"ids": [1], "$expand": "Everything"}),
        ("workitemsbatch", "response", {"count": 1, "value": [{"id": "1"}]}),
        ("workitemsbatch", "response", {"count": 1, "value": [{"id": 1, "relations": {}}]}),
    ],
)
def test_the_validator_rejects_documents_that_break_the_spec(
    spec_validator: SpecValidator, endpoint: str, direction: str, document: object
) -> None:
    violations = list(spec_validator.violations)
    with pytest.raises(jsonschema.ValidationError):
        spec_validator.check(endpoint, direction, document)
    # Leave the session's record as it was: these violations were deliberate.
    spec_validator.violations[:] = violations


def test_the_list_wrapper_is_required_for_batch_responses(spec_validator: SpecValidator) -> None:
    with pytest.raises(AssertionError, match="not a list wrapper"):
        spec_validator.check("workitemsbatch", "response", {"value": []})
