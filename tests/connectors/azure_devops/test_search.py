"""WIQL paged by id under the 20,000 cap, batches of 200, and the query a fetch sends.

The real connector and the real ``azure-devops`` SDK over HTTP against the session's fake organisation
(each test in its own project); request counts come from the fake's log of what crossed the wire.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from connectors.azure_devops import wiql_condition
from connectors.base import ConnectorError
from tests.connectors.azure_devops.conftest import ConnectorFactory, Sleeps
from tests.connectors.azure_devops.fake_org import PAT
from tests.fakes.ado_server import FakeAzureDevOps, of_kind

DEP_REVERSE = "System.LinkTypes.Dependency-Reverse"
DEP_FORWARD = "System.LinkTypes.Dependency-Forward"


@pytest.mark.parametrize("count", [0, 1, 200, 201, 2500])
def test_fetch_sizes_use_one_wiql_and_full_batches(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
    count: int,
) -> None:
    project = unique_name("Size")
    ado.add_project(project)
    ids = [ado.add_item(project, f"Story {n}") for n in range(count)]
    connector = make_connector()
    mark = len(ado.requests)

    result = connector.fetch(project, None, full=True)

    assert sorted(int(i.key) for i in result.issues) == ids
    assert not result.skipped
    sent = ado.requests_since(mark)
    batches = of_kind(sent, "POST", f"/{project}/_apis/wit/workItemsBatch")
    assert len(batches) == math.ceil(count / 200)
    assert all(len(b.body["ids"]) <= 200 for b in batches)
    assert all(b.body.get("$expand") == "Relations" and "fields" not in b.body for b in batches)
    assert len(of_kind(sent, "POST", "/_apis/wit/wiql")) == 1
    # api-version travels in the Accept header, at the 7.1 preview versions the v7_1 client uses.
    assert {b.api_version for b in batches} <= {"7.1-preview.1"}
    # The connector counts what its own clients sent; the SDK's connection discovery (OPTIONS and
    # ResourceAreas, made by its internal location client) is visible only on the wire.
    discovery = [r for r in sent if r.method == "OPTIONS" or "ResourceAreas" in r.path]
    assert result.counters.requests == len(sent) - len(discovery)


def test_query_over_the_20000_cap_is_split_and_syncs_completely(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Huge")
    ado.add_project(project)
    total = 20_050
    for n in range(total):
        ado.add_item(project, f"Story {n}")
    connector = make_connector()
    mark = len(ado.requests)

    result = connector.fetch(project, None, full=True)

    assert len(result.issues) == total
    wiql = of_kind(ado.requests_since(mark), "POST", "/_apis/wit/wiql")
    assert [r.status for r in wiql] == [200, 200]
    assert [r.query.get("$top") for r in wiql] == ["20000", "20000"]
    # The same query without $top is what the service refuses (VS402337): the fake enforces the cap.
    refused = _raw_wiql(
        ado, project, f"SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = '{project}'"
    )
    assert refused[0] == 400
    assert "VS402337" in refused[1]["message"]


def _raw_wiql(ado: FakeAzureDevOps, project: str, query: str) -> tuple[int, dict[str, Any]]:
    import base64

    import httpx

    auth = base64.b64encode(f":{PAT}".encode()).decode()
    response = httpx.post(
        f"{ado.url}/{project}/_apis/wit/wiql",
        json={"query": query},
        headers={"Authorization": f"Basic {auth}", "Accept": "application/json;api-version=7.1"},
    )
    return response.status_code, response.json()


def test_small_wiql_pages_still_return_every_item_once(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Paged")
    ado.add_project(project)
    ids = [ado.add_item(project, f"Story {n}") for n in range(120)]
    connector = make_connector(wiql_page_size=50)
    mark = len(ado.requests)

    result = connector.fetch(project, None, full=True)

    assert [int(i.key) for i in result.issues] == ids
    assert len(of_kind(ado.requests_since(mark), "POST", "/_apis/wit/wiql")) == 3


def test_names_with_quotes_cannot_change_the_query(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    victim = unique_name("Victim")
    ado.add_project(victim)
    ado.add_item(victim, "must not leak")
    evil = "x' OR [System.TeamProject] <> 'x"
    ado.add_project(evil)
    mine = ado.add_item(evil, "mine", fields={"System.AreaPath": "x' OR [System.Id] > 0 OR 'a\\Team"})
    ado.add_item(evil, "other area", fields={"System.AreaPath": "x' OR [System.Id] > 0 OR 'a"})
    connector = make_connector(area_path="x' OR [System.Id] > 0 OR 'a\\Team")

    result = connector.fetch(evil, None, full=True)

    assert [i.key for i in result.issues] == [str(mine)]


def test_configured_wiql_is_scoped_to_the_project(
    make_connector: ConnectorFactory,
    ado: FakeAzureDevOps,
    pat_env: str,
    sleeps: Sleeps,
    unique_name: Callable[[str], str],
) -> None:
    project = unique_name("Wiql")
    other = unique_name("WiqlOther")
    ado.add_project(project)
    ado.add_project(other)
    wanted = ado.add_item(project, "where order by", fields={"System.Tags": "refine"})
    ado.add_item(project, "untagged")
    ado.add_item(other, "other project", fields={"System.Tags": "refine"})
    query = (
        "SELECT [System.Id], [System.Title] FROM WorkItems "
        "WHERE [System.Tags] CONTAINS 'refine' AND [System.Title] <> 'order by x' "
        "ORDER BY [System.ChangedDate] DESC"
    )
    connector = make_connector()

    result = connector.fetch(project, query, full=True)

    assert [i.key for i in result.issues] == [str(wanted)]
    assert wiql_condition(query) == "[System.Tags] CONTAINS 'refine' AND [System.Title] <> 'order by x'"
    with pytest.raises(ConnectorError, match="FROM WorkItems"):
        wiql_condition("SELECT [System.Id] FROM WorkItemLinks WHERE [Source].[System.Id] = 1")
