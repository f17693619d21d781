"""The fake Azure DevOps server keeps to the vendor's WIT 7.1 spec and the service's limits.

The session's fake validates every WIQL and batch exchange as it serves it (see conftest.py for the
four documented differences between the spec and real traffic). These tests prove the validator
bites and really ran over a sync's traffic, and that the fake refuses what the service refuses.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import jsonschema
import pytest

from connectors.azure_devops import AzureDevOpsConnector
from refinebot.config import AzureDevOpsSourceConfig
from tests.connectors.azure_devops.fake_org import PAT, TOKEN_ENV
from tests.connectors.azure_devops.spec_check import SpecValidator
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


def _post(ado: FakeAzureDevOps, path: str, body: object, accept: str) -> httpx.Response:
    auth = base64.b64encode(f":{PAT}".encode()).decode()
    return httpx.post(
        f"{ado.url}/{path}", json=body, headers={"Authorization": f"Basic {auth}", "Accept": accept}
    )


def test_the_fake_enforces_the_service_limits_the_connector_must_respect(
    ado: FakeAzureDevOps, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("Limits")
    ado.add_project(project)
    item = ado.add_item(project, "one")
    accept = "application/json;api-version=7.1-preview.1"
    batch = f"{project}/_apis/wit/workitemsbatch"

    too_many = _post(ado, batch, {"ids": list(range(1, 202))}, accept)
    both = _post(ado, batch, {"ids": [item], "fields": ["System.Title"], "$expand": "Relations"}, accept)
    no_version = _post(ado, batch, {"ids": [item]}, "application/json")
    in_query = _post(ado, f"{batch}?api-version=7.1", {"ids": [item]}, "application/json")

    assert too_many.status_code == 400
    assert "VS403474" in too_many.json()["message"]
    assert both.status_code == 400
    assert "expand parameter can not be used with the fields" in both.json()["message"]
    assert no_version.status_code == 400
    assert in_query.status_code == 200
    assert in_query.json()["value"][0]["fields"]["System.Title"] == "one"


def test_the_fake_serves_work_items_by_ids_through_the_sdk(
    ado: FakeAzureDevOps, pat_env: str, unique_name: Callable[[str], str]
) -> None:
    project = unique_name("ByIds")
    ado.add_project(project)
    first = ado.add_item(project, "first")
    second = ado.add_item(project, "second")
    from azure.devops.connection import Connection
    from msrest.authentication import BasicAuthentication

    wit = Connection(
        base_url=ado.url, creds=BasicAuthentication("", PAT)
    ).clients_v7_1.get_work_item_tracking_client()

    items = wit.get_work_items([first, second], project=project, fields=["System.Title"])

    assert [(i.id, i.fields) for i in items] == [
        (first, {"System.Title": "first"}),
        (second, {"System.Title": "second"}),
    ]
